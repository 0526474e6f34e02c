"""Escalation notifications (issue 23): a real HTTP receiver and a real SMTP server (aiosmtpd)
on 127.0.0.1, the real app, store, model and database."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from kb.api.app import create_app
from kb.retrieval.ops_settings import NotifySettings
from tests.serving import serving

pytestmark = pytest.mark.integration

SECRET = "s3cret-for-tests"
UNANSWERABLE = "How many weeks of parental leave do employees get? I am on 090-1234-5678"
FAST = {"retry_base_s": 0.2, "poll_s": 0.1, "timeout_s": 2.0}


class Receiver:
    """A webhook receiver: answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, dict[str, str]]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = outer.statuses.pop(0) if outer.statuses else 200
                outer.bodies.append((body, dict(self.headers), status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/kb"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield box, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


def _app(sample_kb, notify: NotifySettings) -> TestClient:
    kb, db, _ = sample_kb
    settings = kb.settings.model_copy(update={"notify": notify})
    return TestClient(create_app(settings, lifespan=serving(kb, db)))


def _wait(predicate, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _log(client) -> list[dict]:
    resp = client.get("/api/notifications", headers={"X-User-Id": "s", "X-User-Roles": "support"})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_escalations_post_a_signed_webhook_and_retry(sample_kb) -> None:
    receiver = Receiver()
    receiver.statuses = [500]  # the first attempt fails: retried with backoff
    notify = NotifySettings(webhook_url=receiver.url, webhook_secret=SECRET, **FAST)
    try:
        with _app(sample_kb, notify) as client:
            asked = client.post("/api/ask", json={"question": UNANSWERABLE},
                                headers={"X-User-Id": "n1"}).json()  # fmt: skip
            assert asked["status"] == "escalated"
            _wait(lambda: len(receiver.bodies) >= 2)
            # The asker escalates an answered question of theirs: notified too.
            other = client.post("/api/ask", json={"question": "How do I reset my TeamLedger "
                                "password?"}, headers={"X-User-Id": "n1"}).json()  # fmt: skip
            esc = client.post("/api/escalate", json={"query_id": other["query_id"]},
                              headers={"X-User-Id": "n1"})  # fmt: skip
            assert esc.status_code == 200
            _wait(lambda: len(receiver.bodies) >= 3)
            deliveries = _log(client)
    finally:
        receiver.stop()
    (failed, h1, s1), (body, headers, s2), (body2, _h, _s) = receiver.bodies[:3]
    assert (s1, s2) == (500, 200) and failed == body
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-KB-Signature"] == expected
    event = json.loads(body)
    assert event["event"] == "question.escalated" and event["query_id"] == asked["query_id"]
    assert "1234-5678" not in body.decode() and "[PHONE]" in event["question"]
    assert event["group_id"] and event["console_url"].endswith(
        f"/console#group-{event['group_id']}"
    )
    assert event["group"]
    second = json.loads(body2)
    assert second["query_id"] == other["query_id"] and second["reason"] == "user_escalation"
    mine = next(d for d in deliveries if d["query_id"] == asked["query_id"])
    assert mine["status"] == "delivered" and mine["attempts"] == 2 and mine["channel"] == "webhook"


def test_an_unreachable_webhook_never_delays_or_fails_the_answer(sample_kb) -> None:
    dead = f"http://127.0.0.1:{_free_port()}/hook"
    notify = NotifySettings(webhook_url=dead, webhook_secret=SECRET, max_attempts=2, **FAST)
    with _app(sample_kb, notify) as client:
        t0 = time.monotonic()
        asked = client.post("/api/ask", json={"question": UNANSWERABLE},
                            headers={"X-User-Id": "n2"})  # fmt: skip
        assert asked.status_code == 200 and asked.json()["status"] == "escalated"
        assert time.monotonic() - t0 < 10
        qid = asked.json()["query_id"]
        _wait(lambda: any(d["query_id"] == qid and d["status"] == "failed" for d in _log(client)))
        entry = next(d for d in _log(client) if d["query_id"] == qid)
    assert entry["attempts"] == 2 and "ConnectError" in entry["last_error"]


def test_one_email_per_escalation_and_group_routing(sample_kb, smtp) -> None:
    box, url = smtp
    notify = NotifySettings(smtp_url=url, email_to=["support@example.com"], **FAST)
    with _app(sample_kb, notify) as client:
        asked = client.post("/api/ask", json={"question": UNANSWERABLE},
                            headers={"X-User-Id": "n3"}).json()  # fmt: skip
        _wait(lambda: len(box.messages) >= 1)
    rcpts, msg = box.messages[0]
    assert rcpts == ["support@example.com"]
    text = msg.get_payload(decode=True).decode()
    assert "parental leave" in text and "[PHONE]" in text and "1234-5678" not in text
    assert "/console#group-" in text and asked["query_id"] in text


def test_internal_escalations_go_to_their_groups_address(sample_kb, smtp) -> None:
    box, url = smtp
    notify = NotifySettings(
        smtp_url=url, email_to=["support@example.com"],
        group_emails={"support-internal": ["tier2@example.com"]}, **FAST,
    )  # fmt: skip
    member = {"X-User-Id": "n4", "X-User-Groups": "support-internal"}
    with _app(sample_kb, notify) as client:
        asked = client.post(
            "/api/ask", json={"question": "How do I arrange a loaner printer for a customer "
                              "whose Aster has to go in for repair?"}, headers=member,
        ).json()  # fmt: skip
        assert asked["status"] == "answered"
        client.post("/api/escalate", json={"query_id": asked["query_id"]}, headers=member)
        _wait(lambda: len(box.messages) >= 1)
    assert box.messages[0][0] == ["tier2@example.com"]


def test_a_digest_collects_escalations(sample_kb, smtp) -> None:
    box, url = smtp
    notify = NotifySettings(smtp_url=url, email_to=["support@example.com"], digest_s=1.5, **FAST)
    with _app(sample_kb, notify) as client:
        for q in ("How many weeks of parental leave do employees get?",
                  "How do I book a meeting room for next Tuesday?"):  # fmt: skip
            client.post("/api/ask", json={"question": q}, headers={"X-User-Id": "n5"})
        _wait(lambda: len(box.messages) >= 1)
        time.sleep(0.5)
    assert len(box.messages) == 1
    msg = box.messages[0][1]
    assert msg["Subject"] == "[KB] 2 escalated questions"
    text = msg.get_payload(decode=True).decode()
    assert "parental leave" in text and "meeting room" in text


def test_notify_settings_fail_fast() -> None:
    with pytest.raises(ValueError):
        NotifySettings(webhook_url="http://127.0.0.1:9/x")
    with pytest.raises(ValueError):
        NotifySettings(smtp_url="smtp://127.0.0.1:25")
    with pytest.raises(ValueError):
        NotifySettings(smtp_url="http://127.0.0.1:25", email_to=["a@example.com"])
