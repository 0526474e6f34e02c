"""The web front end in a real browser (issue 6): widget, console, content and evaluation pages.

Screenshots land in test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.integration]

HOSTILE_CSS = "* { all: unset !important; font-size: 2px !important; display: inline !important }"
UNANSWERED = "Is there visitor parking at the Yokohama office?"
STAFF_ANSWER = (
    "Visitor parking at the Yokohama office is in the basement garage (B1), entrance on the"
    " east side of the building. Reserve a space at reception one business day ahead."
)


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def ask_in_widget(page: Any, question: str) -> Any:
    """Type a question into the open widget; returns the locator of the new answer."""
    before = page.locator("kb-widget article.turn").count()
    box = page.locator("kb-widget form.ask textarea")
    box.fill(question)
    box.press("Enter")
    turn = page.locator("kb-widget article.turn").nth(before)
    expect(turn.locator("p.a")).not_to_be_empty(timeout=60_000)
    return turn


def pick_roles(page: Any, *roles: str) -> None:
    """Pick exactly ``roles`` in a staff page's sign-in form (a role picker, issue 25)."""
    for box in page.locator(".dev-identity fieldset.roles input[type=checkbox]").all():
        box.set_checked(box.get_attribute("value") in roles)


def open_widget(page: Any, base: str) -> None:
    page.goto(f"{base}/demo")
    launcher = page.locator("kb-widget button.launcher")
    expect(launcher).to_be_visible()
    launcher.click()
    expect(page.locator("kb-widget form.ask textarea")).to_be_focused()


def test_widget_answers_with_citations_and_opens_the_source(live_server, context):
    page = context.new_page()
    open_widget(page, live_server)
    buttons = page.locator("kb-widget .suggest button")
    expect(buttons.first).to_be_visible()
    # A suggestion is a popular question (tagged; earlier tests on this server may have made
    # some) or one of the sample FAQ's own questions (starters): never a question of no source.
    faq = (Path(__file__).parents[2] / "docs_corpus/faq/kos-support-faq.csv").read_text("utf-8")
    for button in buttons.all():
        if button.locator(".tag").count() == 0:
            assert button.inner_text().strip() in faq, button.inner_text()
    shot(page, "01-demo-widget-open")
    turn = ask_in_widget(page, "How do I replace the toner?")
    assert "answered" in (turn.get_attribute("class") or "")
    cites = turn.locator("a.cite")
    assert cites.count() >= 1
    cards = turn.locator("li.card")
    assert cards.count() >= 1
    expect(cards.first.locator("mark").first).to_be_visible()
    expect(cards.first.locator("a.title")).not_to_be_empty()
    # A citation marker moves focus to its source card.
    cites.first.click()
    n = cites.first.inner_text().strip("[]")
    expect(turn.locator(f'li.card[data-n="{n}"]')).to_be_focused()
    shot(page, "02-widget-answer-with-citations")
    # The card's link opens the source at its location.
    with context.expect_page() as popup_info:
        cards.first.locator("a.open").click()
    source = popup_info.value
    source.wait_for_load_state()
    assert re.search(r"/api/documents/[^/]+/source", source.url), source.url
    # The link carries the location (#page=N for a PDF, #anchor for a view) and the source loads.
    assert "#" in source.url, source.url
    resp = context.request.get(source.url.split("#")[0])
    assert resp.status == 200 and len(resp.body()) > 100
    shot(source, "03-citation-opens-source")
    # History survives a reload within the session.
    page.reload()
    page.locator("kb-widget button.launcher").click()
    expect(page.locator("kb-widget article.turn")).to_have_count(1)


def test_thumbs_down_queue_staff_answer_then_widget_cites_it(live_server, context):
    page = context.new_page()
    open_widget(page, live_server)
    turn = ask_in_widget(page, UNANSWERED)
    assert "escalated" in (turn.get_attribute("class") or "")
    expect(turn.locator("p.note")).to_contain_text("support team")
    turn.locator("button.down").click()
    expect(turn.locator("button.down")).to_have_attribute("aria-pressed", "true")
    # "Still need help" with a note says what happens next.
    turn.locator("button.more").click()
    turn.locator("form.escalate textarea").fill("Visitor arrives on Monday")
    turn.locator("form.escalate button[type=submit]").click()
    expect(turn.locator("p.note")).to_contain_text("What happens next")
    shot(page, "04-widget-escalated-and-thumbs-down")

    console = context.new_page()
    console.goto(f"{live_server}/console")
    group = console.locator("article.group", has_text=UNANSWERED)
    expect(group).to_be_visible()
    expect(group).to_contain_text("asker asked for a person")
    shot(console, "05-console-queue", full_page=True)
    group.locator("button.select").click()
    console.locator("#answer-text").fill(STAFF_ANSWER)
    console.locator("#publish").click()
    expect(console.locator("#editor-status")).to_contain_text("Published")
    shot(console, "06-console-answer-published", full_page=True)

    turn2 = ask_in_widget(page, UNANSWERED)
    assert "answered" in (turn2.get_attribute("class") or "")
    expect(turn2.locator("p.a")).to_contain_text("basement garage")
    expect(turn2.locator("li.card").first).to_contain_text("basement garage")
    shot(page, "07-widget-cites-staff-answer")

    console.locator('[role="tab"]#tab-analytics').click()
    expect(console.locator("#charts figure svg").first).to_be_visible()
    expect(console.locator("#cards")).to_contain_text("Questions")
    shot(console, "08-console-analytics", full_page=True)


def test_upload_shows_in_content_page_and_becomes_answerable(live_server, context, tmp_path):
    doc = tmp_path / "cafeteria_menu.md"
    doc.write_text(
        "# Cafeteria menu\n\n## Wednesday special\n\n"
        "The Aster headquarters cafeteria serves tonkotsu ramen every Wednesday.\n",
        encoding="utf-8",
    )
    page = context.new_page()
    page.goto(f"{live_server}/content")
    expect(page.locator("#documents tbody tr").first).to_be_visible()
    page.locator("#upload input[type=file]").set_input_files(str(doc))
    page.locator("#upload button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text("Done", timeout=60_000)
    row = page.locator("#documents tbody tr", has_text="cafeteria")
    expect(row).to_be_visible()
    expect(row).to_contain_text("indexed")
    expect(page.locator("#runs tbody tr").first).to_be_visible()
    page.locator("#runs tbody tr").first.locator("summary").click()
    expect(page.locator("#runs tbody tr").first.locator("li").first).to_be_visible()
    shot(page, "09-content-page-after-upload", full_page=True)

    widget = context.new_page()
    open_widget(widget, live_server)
    turn = ask_in_widget(widget, "Which day does the headquarters cafeteria serve ramen?")
    assert "answered" in (turn.get_attribute("class") or ""), turn.inner_text()
    expect(turn.locator("li.card").first).to_contain_text("cafeteria", ignore_case=True)
    shot(widget, "10-widget-answers-from-upload")


def test_widget_survives_a_hostile_host_stylesheet(live_server, context):
    page = context.new_page()
    page.goto(f"{live_server}/demo")
    page.add_style_tag(content=HOSTILE_CSS)
    launcher = page.locator("kb-widget button.launcher")
    expect(launcher).to_be_visible()
    box = launcher.bounding_box()
    assert box and box["height"] >= 30 and box["width"] >= 80, box
    launcher.click()
    turn = ask_in_widget(page, "How do I replace the toner?")
    expect(turn.locator("li.card").first).to_be_visible()
    size = turn.locator("p.a").evaluate("e => getComputedStyle(e).fontSize")
    assert size == "15px", size
    shot(page, "11-widget-hostile-host-css")


def test_japanese_phone_width_and_evaluation_page(live_server, browser):
    ctx = browser.new_context(viewport={"width": 375, "height": 740}, locale="ja-JP")
    try:
        page = ctx.new_page()
        page.goto(f"{live_server}/demo")
        page.evaluate("document.documentElement.lang = 'ja'")
        page.locator("kb-widget").evaluate("e => e.setAttribute('lang', 'ja')")
        page.locator("kb-widget button.launcher").click()
        expect(page.locator("kb-widget .head h2")).to_have_text("ナレッジベース")
        turn = ask_in_widget(page, "トナーカートリッジを交換するには？")
        expect(turn.locator("button.more")).to_have_text("まだ解決しない")
        panel = page.locator("kb-widget section.panel").bounding_box()
        assert panel and panel["width"] <= 375, panel
        shot(page, "12-widget-japanese-phone-width")
    finally:
        ctx.close()

    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        page.goto(f"{live_server}/evaluation")
        rows = page.locator("#runs tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("0.950")
        shot(page, "13-evaluation-page")
        with ctx.expect_page() as report_info:
            rows.first.locator("button.report").click()
        report = report_info.value
        report.wait_for_load_state()
        expect(report.locator("h1")).to_contain_text("Eval report 20261102T090000Z")
        # Only evaluators and admins see the runs.
        pick_roles(page, "employee")
        page.locator(".dev-identity button").click()
        expect(page.locator("#status")).to_contain_text("evaluator")
    finally:
        ctx.close()


def test_screenshots_folder_is_git_ignored():
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text(encoding="utf-8")
    assert "test-artifacts/" in ignored
