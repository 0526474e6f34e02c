"""Screenshots of every page at desktop width (English) and phone width (Japanese), for the
README (issue 25). ``make screenshots`` writes them to docs/screenshots/ (KB_SCREENSHOTS_DIR);
a plain test run writes them under test-artifacts/ (git-ignored) and checks each was taken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import SHOTS
from tests.browser.test_web import ask_in_widget, expect

pytestmark = [pytest.mark.browser, pytest.mark.integration]

OUT = Path(os.environ.get("KB_SCREENSHOTS_DIR") or SHOTS / "pages")
# (file name, path); _prepare() fills each with something to show.
PAGES = [
    ("ask", "/"),
    ("widget-demo", "/demo"),
    ("console", "/console"),
    ("content", "/content"),
    ("evaluation", "/evaluation"),
    ("vocabulary", "/vocabulary"),
]
SIZES = {
    "desktop-en": ({"width": 1280, "height": 800}, "en-US"),
    "mobile-ja": ({"width": 375, "height": 740}, "ja-JP"),
}
QUESTIONS = {"en-US": "How do I replace the toner?", "ja-JP": "トナーカートリッジを交換するには？"}


def _seed(context: Any, base: str) -> None:
    """A queue to show: a question the documents do not answer, asked twice."""
    for user in ("shots-1", "shots-2"):
        resp = context.request.post(
            f"{base}/api/ask",
            data={"question": "Is there visitor parking at the Osaka office?"},
            headers={"X-User-Id": user},
        )
        assert resp.status == 200, resp.text()


def _prepare(page: Any, path: str, locale: str) -> None:
    page.wait_for_load_state("networkidle")
    expect(page.locator("[aria-busy=true]")).to_have_count(0)
    if path == "/":
        box = page.locator("#question")
        box.fill(QUESTIONS[locale])
        box.press("Enter")
        expect(page.locator("#results article.turn:not(.pending) p.meta")).to_be_visible(
            timeout=60_000
        )
        page.evaluate("window.scrollTo(0, 0)")
    if path == "/demo":
        page.locator("kb-widget button.launcher").click()
        turn = ask_in_widget(page, QUESTIONS[locale])
        turn.evaluate("n => n.scrollIntoView({ block: 'start' })")
    if path == "/console":
        select = page.locator("article.group button.select")
        if select.count():
            select.first.click()
        page.evaluate("window.scrollTo(0, 0)")


@pytest.mark.parametrize("size", list(SIZES))
def test_screenshots_of_every_page(live_server, browser, size):
    viewport, locale = SIZES[size]
    ctx = browser.new_context(viewport=viewport, locale=locale, device_scale_factor=1)
    ctx.set_default_timeout(30_000)
    try:
        _seed(ctx, live_server)
        OUT.mkdir(parents=True, exist_ok=True)
        for name, path in PAGES:
            page = ctx.new_page()
            page.goto(f"{live_server}{path}")
            _prepare(page, path, locale)
            target = OUT / f"{name}-{size}.png"
            page.screenshot(path=str(target))
            assert target.stat().st_size > 5_000, target
            page.close()
    finally:
        ctx.close()
