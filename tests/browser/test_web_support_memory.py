"""The loop in the console (issue 22): a queued question is answered by an existing passage
picked in the console, the bot answers the same need from it next time, and the confirmed
answer is listed (and removable) under "Confirmed answers"."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import shot
from tests.browser.test_web import expect

QUESTION = "Can I bring my dog to the Kanazawa branch office on Fridays?"
pytestmark = [pytest.mark.browser, pytest.mark.integration]

STAFF = {"X-User-Id": "memory-staff", "X-User-Roles": "support"}


def _errors(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: found.append(f"pageerror: {e}"))
    return found


def _ask(context: Any, live_server: str, user: str) -> dict[str, Any]:
    resp = context.request.post(
        f"{live_server}/api/ask", data={"question": QUESTION}, headers={"X-User-Id": user}
    )
    assert resp.status == 200, resp.text()
    body: dict[str, Any] = resp.json()
    return body


def test_link_a_queued_question_to_a_passage_and_see_it_confirmed(live_server, context):
    first = _ask(context, live_server, "dog-1")
    assert first["status"] == "escalated", first
    page = context.new_page()
    errors = _errors(page)
    page.goto(f"{live_server}/console")
    item = f'li.variant[data-query-id="{first["query_id"]}"]'
    group = page.locator("article.group", has=page.locator(item))
    expect(group).to_have_count(1)
    group.locator("button.select").click()
    page.fill("#passage-q", "office access badge reception")
    page.click("#find-passages")
    results = page.locator("#passages li button")
    expect(results.first).to_be_visible()
    shot(page, "29-console-passage-picker")
    results.first.click()
    expect(page.locator("#editor-status")).to_contain_text("Linked")

    again = _ask(context, live_server, "dog-2")
    assert again["status"] == "answered", again

    page.click("#tab-memory")
    row = page.locator("#memory tbody tr", has_text=QUESTION)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("staff (linked)")
    # One confirmed question teaches no ranker yet: the console says how many it needs (or,
    # while the first background fit runs, that it is learning).
    learning = re.compile(r"learns from 50 confirmed questions \(\d+ so far\)|Learning from")
    expect(page.locator("#memory-learning")).to_contain_text(learning)
    shot(page, "30-console-confirmed-answers")
    row.locator("button.danger").click()
    expect(page.locator("#memory-note")).to_contain_text("Removed")
    last = _ask(context, live_server, "dog-3")
    assert last["status"] == "escalated"
    assert errors == [], errors
    # Leave no open group behind: the other suites share this server's queue.
    queue = context.request.get(f"{live_server}/api/queue", headers=STAFF).json()
    for g in queue:
        if any(v["query_id"] == last["query_id"] for v in g["variants"]):
            done = context.request.patch(
                f"{live_server}/api/queue/{g['id']}", data={"state": "dismissed"}, headers=STAFF
            )
            assert done.status == 200, done.text()
