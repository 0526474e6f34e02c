"""Over real HTTP, against ``kb serve`` as it starts in production (issue 20): forwarding
headers honoured only from trusted proxies, rate limits by user first, refused requests
audited at a bounded rate, security headers on every page, /docs without a CDN; and the
audit log's purge, explicit and itself audited."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from kb.api.proxies import client_address, parse_networks
from kb.cli.main import main
from kb.db.engine import Database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("served")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KB_DATA_DIR": str(data),
        "KB_DOCS_DIR": str(data / "kb"),
        "KB_EMBEDDER__MODELS": '["hash"]',
        "KB_LIMITS__ADDRESS_PER_MINUTE": "60",
        "KB_LIMITS__ADDRESS_BURST": "5",
        "KB_AUDIT_DENIALS_PER_MINUTE": "3",
        "KB_AUTH__CORS_ORIGINS": '["https://intranet.example"]',
        "KB_TRUSTED_PROXIES": '["10.9.9.9"]',  # a proxy elsewhere: loopback is not one
    }
    cmd = [
        sys.executable,
        "-c",
        "from kb.cli.main import main; main()",
        "serve",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "kb serve did not start"
        time.sleep(0.5)
    try:
        yield base, data
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow  # starts server processes
def test_forwarded_for_from_an_untrusted_peer_buys_nothing(served: tuple[str, Path]) -> None:
    base, data = served
    statuses = []
    for i in range(12):
        spoof = {"X-Forwarded-For": f"198.51.100.{i}"}
        statuses.append(httpx.get(f"{base}/api/history", headers=spoof, timeout=10).status_code)
    # Five in the burst, then the (one, real) address is limited, whatever the header says.
    assert statuses[:5] == [401] * 5 and 429 in statuses[5:], statuses
    db = Database(f"sqlite:///{data / 'kb.sqlite3'}")
    try:
        from kb.services.audit import entries

        denied = entries(db, action="access.denied", limit=100)
    finally:
        db.dispose()
    assert {e["ip"] for e in denied} == {"127.0.0.1"}
    # Five refusals, at most three a minute written: the append-only log cannot be flooded.
    assert 1 <= len(denied) <= 3


@pytest.mark.slow  # starts server processes
def test_an_authenticated_user_is_limited_as_a_user_not_by_address(
    served: tuple[str, Path],
) -> None:
    base, data = served
    from kb.retrieval.settings import Settings
    from kb.services.auth import Authenticator

    token = Authenticator(Settings(data_dir=data)).issue_service_token("operator")
    for _ in range(8):  # the address's burst is spent by now; the user's is not
        resp = httpx.get(f"{base}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 200, resp.text


@pytest.mark.slow  # starts server processes
def test_every_page_carries_security_headers_and_docs_need_no_cdn(served: tuple[str, Path]) -> None:
    base, _ = served
    for page in ("/console", "/content", "/evaluation", "/docs"):
        resp = httpx.get(base + page, timeout=10)
        assert resp.status_code == 200, page
        csp = resp.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, page
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in resp.text  # no inline script: nothing to hash
    ask = httpx.get(base + "/", timeout=10)
    assert (
        "frame-ancestors 'self' https://intranet.example" in ask.headers["content-security-policy"]
    )
    assert "x-frame-options" not in ask.headers
    docs = httpx.get(base + "/docs", timeout=10).text
    assert "/static/api-docs.js" in docs and "cdn" not in docs.lower()
    assert httpx.get(base + "/static/api-docs.js", timeout=10).status_code == 200
    assert httpx.get(base + "/openapi.json", timeout=10).json()["paths"]
    assert httpx.get(base + "/redoc", timeout=10).status_code == 404
    api = httpx.get(base + "/api/me", timeout=10)
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    assert api.headers["x-content-type-options"] == "nosniff"


def test_docs_can_be_switched_off(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from kb.api.app import create_app
    from kb.retrieval.settings import Settings

    app = create_app(Settings(data_dir=tmp_path, api_docs=False), lifespan=_no_lifespan)
    with TestClient(app) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 404


def _no_lifespan(app):  # type: ignore[no-untyped-def]
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def span(_app):  # type: ignore[no-untyped-def]
        yield

    return span(app)


def test_trusted_proxies_name_the_client() -> None:
    nets = parse_networks(["10.0.0.0/8", "192.0.2.1"])
    assert client_address("127.0.0.1", "203.0.113.9", nets) == "127.0.0.1"  # untrusted peer
    assert client_address("10.1.2.3", "203.0.113.9", nets) == "203.0.113.9"
    # A client-sent first hop does not win: the right-most untrusted address does.
    assert client_address("10.1.2.3", "1.2.3.4, 203.0.113.9, 10.0.0.5", nets) == "203.0.113.9"
    assert client_address("192.0.2.1", "not-an-ip", nets) == "192.0.2.1"
    assert client_address("10.1.2.3", "203.0.113.9", ()) == "10.1.2.3"
    with pytest.raises(ValueError, match="KB_TRUSTED_PROXIES"):
        parse_networks(["proxy.example"])


def test_the_audit_log_is_purged_only_by_the_audited_command(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from kb.services.audit import entries, record

    url = f"sqlite:///{tmp_path / 'kb.sqlite3'}"
    db = Database(url)
    db.migrate()
    try:
        record(db, actor="old", action="token.create", target="t1")
        record(db, actor="new", action="token.create", target="t2")
        with db.engine.begin() as conn:  # age one entry (the triggers refuse UPDATE: lift one)
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(
                text("UPDATE audit_log SET at = :at WHERE actor = 'old'"),
                {"at": datetime.now(UTC) - timedelta(days=800)},
            )
            conn.execute(
                text(
                    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
                    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
                )
            )
        env = {"KB_DATA_DIR": str(tmp_path), "KB_DATABASE_URL": url}
        dry = CliRunner().invoke(main, ["audit", "purge", "--dry-run", "--json"], env=env)
        assert dry.exit_code == 0, dry.output
        assert json.loads(dry.output)["deleted"] == 1
        assert {e["actor"] for e in entries(db)} == {"old", "new"}
        done = CliRunner().invoke(main, ["audit", "purge", "--json"], env=env)
        assert done.exit_code == 0, done.output and json.loads(done.output)["deleted"] == 1
        left = entries(db)
        assert {e["actor"] for e in left} == {"new"} | {
            e["actor"] for e in left if e["action"] == "audit.purge"
        }
        (purged,) = [e for e in left if e["action"] == "audit.purge"]
        assert purged["detail"]["deleted"] == 1 and purged["actor"].startswith("cli:")
        # The protection is back: nothing else may delete.
        with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log"))
    finally:
        db.dispose()
