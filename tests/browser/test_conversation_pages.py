"""Issue 23 in a real browser: the widget keeps its conversation, the console shows a queued
follow-up's earlier turns and the notification delivery log, and content owners edit the staff
vocabulary. Screenshots land in test-artifacts/screenshots/ (git-ignored).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.browser.conftest import shot
from tests.browser.test_web import ask_in_widget, expect, pick_roles

pytestmark = [pytest.mark.browser, pytest.mark.integration]

OPENER = "How do I connect the Aster MF-3400 to the office Wi-Fi?"
FOLLOW_UP = "Can it email scans from a Chromebook?"
STAFF = {"X-User-Id": "support-1", "X-User-Roles": "support"}


def _asks(page: Any) -> list[dict[str, Any]]:
    """The bodies the page POSTs to /api/ask, in order (appended as they are sent)."""
    bodies: list[dict[str, Any]] = []

    def record(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/api/ask"):
            bodies.append(json.loads(request.post_data or "{}"))

    page.on("request", record)
    return bodies


def _ask_api(context: Any, base: str, question: str, user: str, cid: str | None = None) -> dict:
    body: dict[str, Any] = {"question": question}
    if cid:
        body["conversation_id"] = cid
    resp = context.request.post(f"{base}/api/ask", data=body, headers={"X-User-Id": user})
    assert resp.status == 200, resp.text()
    data: dict[str, Any] = resp.json()
    return data


def test_widget_follow_up_keeps_the_conversation_at_phone_width(live_server, browser):
    ctx = browser.new_context(viewport={"width": 375, "height": 740}, locale="en-US")
    ctx.set_default_timeout(30_000)
    try:
        page = ctx.new_page()
        sent = _asks(page)
        page.goto(f"{live_server}/demo")
        page.locator("kb-widget button.launcher").click()
        first = ask_in_widget(page, OPENER)
        cid = first.evaluate("n => n.getRootNode().host.conversationId")
        assert cid and "conversation_id" not in sent[0]

        second = ask_in_widget(page, FOLLOW_UP)
        assert sent[1]["conversation_id"] == cid, sent
        # The earlier turn stays in view above the follow-up, which is marked as one.
        turns = page.locator("kb-widget article.turn")
        expect(turns).to_have_count(2)
        expect(turns.first.locator("p.q")).to_have_text(OPENER)
        expect(second.locator("p.q .follow")).to_have_text("Follow-up")
        expect(first.locator("p.q .follow")).to_have_count(0)
        panel = page.locator("kb-widget section.panel").bounding_box()
        assert panel and panel["width"] <= 375, panel
        second.evaluate("n => n.scrollIntoView({ block: 'center' })")
        shot(page, "14-widget-follow-up-phone-width")

        # A reload keeps both the turns and the conversation.
        page.reload()
        page.locator("kb-widget button.launcher").click()
        expect(page.locator("kb-widget article.turn")).to_have_count(2)
        ask_in_widget(page, "And how long does that take?")
        assert sent[2]["conversation_id"] == cid, sent

        # "New conversation" forgets the turns and the id: the next question starts afresh.
        page.locator("kb-widget button.new-conversation").click()
        expect(page.locator("kb-widget article.turn")).to_have_count(0)
        expect(page.locator("kb-widget p.status")).to_contain_text("New conversation started")
        shot(page, "15-widget-new-conversation-phone-width")
        fresh = ask_in_widget(page, "How do I replace the toner?")
        assert "conversation_id" not in sent[3], sent
        new_cid = fresh.evaluate("n => n.getRootNode().host.conversationId")
        assert new_cid and new_cid != cid
        expect(fresh.locator("p.q .follow")).to_have_count(0)

        # The control speaks Japanese in a Japanese widget.
        page.locator("kb-widget").evaluate("e => e.setAttribute('lang', 'ja')")
        expect(page.locator("kb-widget button.new-conversation")).to_have_text("新しい会話")
        expect(page.locator("kb-widget article.turn")).to_have_count(1)  # the panel stays open
        shot(page, "16-widget-japanese-new-conversation-control")
    finally:
        ctx.close()


def test_console_shows_a_queued_follow_ups_earlier_turns(live_server, context):
    user = "conv-asker"
    opened = _ask_api(context, live_server, OPENER, user)
    follow = _ask_api(
        context,
        live_server,
        "Can it email scans to taro.yamada@example.com from a Chromebook?",
        user,
        opened["conversation_id"],
    )
    esc = context.request.post(
        f"{live_server}/api/escalate",
        data={"query_id": follow["query_id"]},
        headers={"X-User-Id": user},
    )
    assert esc.status == 200, esc.text()

    page = context.new_page()
    page.goto(f"{live_server}/console")
    item = f'li[data-query-id="{follow["query_id"]}"]'
    variant = page.locator(f"#groups {item}")
    expect(variant).to_have_count(1)
    group = page.locator("article.group", has=page.locator(item))
    expect(group).to_contain_text("follow-up question(s)")
    group.locator("details > summary").click()
    expect(variant).to_be_visible()
    expect(variant).to_contain_text("[EMAIL]")
    expect(variant.locator(".rewritten")).to_contain_text("Searched as")
    expect(variant.locator(".rewritten q")).to_contain_text("Aster")
    earlier = variant.locator(f'.earlier li[data-query-id="{opened["query_id"]}"]')
    expect(earlier).to_contain_text("Wi-Fi")
    assert "taro.yamada" not in page.content()
    group.scroll_into_view_if_needed()
    shot(page, "17-console-follow-up-earlier-turns")


def test_content_owner_adds_and_deletes_a_synonym_set(live_server, context):
    page = context.new_page()
    page.goto(f"{live_server}/vocabulary")
    form = page.locator("#add-set")
    expect(form).to_be_visible()
    box = page.locator("#terms")
    box.fill("KBX-9, knowledge box\nナレッジボックス")
    form.locator("button[type=submit]").click()
    expect(page.locator("#form-status")).to_contain_text("Added set")
    row = page.locator("#sets tbody tr", has_text="KBX-9")
    expect(row.locator("ul.terms li")).to_have_text(["KBX-9", "knowledge box", "ナレッジボックス"])

    # The same set again: refused as a duplicate, in plain words.
    box.fill("knowledge box, KBX-9, ナレッジボックス")
    form.locator("button[type=submit]").click()
    expect(page.locator("#form-status")).to_contain_text("same terms")
    expect(page.locator("#form-status")).to_have_attribute("data-kind", "error")
    # One term is not a set.
    box.fill("KBX-9")
    form.locator("button[type=submit]").click()
    expect(page.locator("#form-status")).to_contain_text("at least two different terms")
    expect(page.locator("#sets tbody tr", has_text="KBX-9")).to_have_count(1)
    box.fill("KBX-9, knowledge box")  # shows the form filled in the screenshot
    shot(page, "18-vocabulary-page", full_page=True)

    row.locator("button.danger").click()
    expect(page.locator("#form-status")).to_contain_text("Deleted set")
    expect(page.locator("#sets tbody tr", has_text="KBX-9")).to_have_count(0)

    # Support staff are told who keeps the vocabulary; the form is not offered.
    pick_roles(page, "support")
    page.locator(".dev-identity button").click()
    expect(page.locator("#status")).to_contain_text("content owners and admins")
    expect(form).to_be_hidden()
    shot(page, "19-vocabulary-page-support-role")


def test_console_delivery_log_renders(live_server, context):
    asked = _ask_api(
        context, live_server, "How many weeks of parental leave do employees get?", "notify-1"
    )
    assert asked["status"] == "escalated"
    qid = asked["query_id"]
    deadline = time.monotonic() + 30
    mine: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        log = context.request.get(f"{live_server}/api/notifications", headers=STAFF).json()
        mine = [d for d in log if d["query_id"] == qid]
        if {d["status"] for d in mine} == {"delivered", "failed"}:
            break
        time.sleep(0.2)
    assert {d["status"] for d in mine} == {"delivered", "failed"}, mine

    page = context.new_page()
    page.goto(f"{live_server}/console")
    page.locator("#tab-notifications").click()
    delivered = page.locator("#deliveries tbody tr[data-status=delivered]").first
    expect(delivered).to_contain_text("question.escalated")
    expect(delivered).to_contain_text("webhook")
    expect(delivered).to_contain_text("/hooks/kb")
    failed = page.locator("#deliveries tbody tr[data-status=failed]").first
    expect(failed).to_contain_text("email")
    expect(failed).to_contain_text("support@example.com")
    expect(failed.locator("td.error")).not_to_have_text("–")
    expect(failed).to_contain_text("gave up")
    expect(page.locator("#deliveries-note")).to_contain_text("failed")
    shot(page, "20-console-delivery-log", full_page=True)

    # Other roles are refused in plain words.
    pick_roles(page, "employee")
    page.locator(".dev-identity button").click()
    expect(page.locator("#deliveries-note")).to_contain_text("support")
