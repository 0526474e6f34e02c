"""The real app under uvicorn on 127.0.0.1 (a free port) with the sample corpus, and Debian's
chromium driven by Playwright (issue 6). Without chromium the tests skip and say how to get it.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from kb.api.app import create_app
from kb.api.web_settings import WebSettings
from kb.db.engine import Database
from kb.ingest.pipeline import Ingestor
from kb.retrieval.ops_settings import NotifySettings
from kb.retrieval.service import KnowledgeBase
from tests.integration.conftest import CORPUS, sample_settings
from tests.serving import serving

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("KB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _fake_eval_dir(root: Path) -> Path:
    """An eval output folder as ``kb eval`` writes it (its own history writer): two runs with
    reports, the second with a variant."""
    from kb.eval.history import append_history

    for i, (ts, recall) in enumerate((("20261101T090000Z", 0.91), ("20261102T090000Z", 0.95))):
        run_dir = root / "runs" / ts
        run_dir.mkdir(parents=True)
        (run_dir / "report.html").write_text(
            f"<!doctype html><title>Eval report {ts}</title><h1>Eval report {ts}</h1>",
            encoding="utf-8",
        )
        entry = {
            "variant": "default",
            "questions": 40,
            "retrieval": {"recall@10": recall, "mrr@10": 0.8, "ndcg@10": 0.82},
            "answering": {"deflection_rate": 0.7, "wrong_answer_rate": 0.05},
            "faithfulness": 1.0,
            "latency_ms": {"p95": 120.0},
        }
        variants = [{"dataset": "sample", **entry, "variant": "bm25"}] if i else []
        report = {
            "run": {
                "started": f"2026-11-0{i + 1}T09:00:00Z",
                "commit": f"{i}abcdef0123456789",
                "settings": {},
            },
            "datasets": {"sample": entry},
            "variants": variants,
        }
        append_history(root, report, Path("eval-runs/runs") / ts)
    return root


class _Hook(BaseHTTPRequestHandler):
    """A webhook receiver that takes every escalation event (issue 23)."""

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.end_headers()


@pytest.fixture(scope="session")
def webhook() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hooks/kb"
    httpd.shutdown()
    httpd.server_close()


def _notify(webhook_url: str) -> NotifySettings:
    """Escalations go to a live webhook (delivered) and to a mail server that is not there
    (failed after two attempts), so the console's delivery log has both to show."""
    return NotifySettings(
        webhook_url=webhook_url,
        webhook_secret="browser-tests",
        smtp_url=f"smtp://127.0.0.1:{_free_port()}",
        email_to=["support@example.com"],
        max_attempts=2,
        retry_base_s=0.2,
        poll_s=0.1,
        timeout_s=2.0,
    )


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium: "
            "`apt-get install chromium` (or set KB_TEST_CHROMIUM)"
        )
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@pytest.fixture(scope="session")
def live_server(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory, webhook: str
) -> Iterator[str]:
    """The app on a free port, its own data folder, the sample corpus ingested, escalations
    notified (:func:`_notify`)."""
    data = tmp_path_factory.mktemp("browser-kb")
    settings = sample_settings(data).model_copy(update={"notify": _notify(webhook)})
    db = Database(settings.db_url())
    db.migrate()
    kb = KnowledgeBase.open(settings)
    Ingestor(kb, db).sync_folder(CORPUS)

    web = WebSettings(eval_dir=_fake_eval_dir(data / "eval-runs"))
    app = create_app(settings, lifespan=serving(kb, db), web=web)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start")
        time.sleep(0.2)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        kb.close()
        db.dispose()


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def shot(page: Any, name: str, **kwargs: Any) -> Path:
    """Save a screenshot under test-artifacts/screenshots/ (git-ignored)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path
