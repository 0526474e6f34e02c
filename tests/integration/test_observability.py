"""Request ids, the access log, JSON logs and ``GET /metrics`` (issue 24)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kb.api.app import create_app
from kb.retrieval.ops_settings import MetricsSettings
from tests.server_process import get, light_env, serve
from tests.serving import serving

pytestmark = pytest.mark.integration
EMPLOYEE = {"X-User-Id": "obs-user", "X-User-Groups": "", "X-User-Roles": "employee"}


def test_request_id_is_taken_or_made_and_returned(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "req-42.a"})
    assert given.headers["x-request-id"] == "req-42.a"
    made = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    # An id that could forge log lines or headers is replaced, not echoed.
    odd = client.get("/healthz", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])
    # Error responses carry it too.
    missing = client.get("/api/no-such-route", headers={"X-Request-ID": "r-404"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "r-404"


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition ``text``."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels} in /metrics")


def test_metrics_cover_requests_asks_retrieval_ingestion_queue_errors(client: TestClient) -> None:
    asked = client.post(
        "/api/ask",
        json={"question": "How many pages does the TN-340 toner yield?"},
        headers=EMPLOYEE,
    )
    assert asked.status_code == 200, asked.text
    outcome, lang = asked.json()["status"], asked.json()["lang"]
    client.post("/api/ask", json={"question": ""}, headers=EMPLOYEE)  # 422
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    text = resp.text
    assert _sample(text, "kb_ask_total", outcome=outcome, lang=lang) >= 1
    assert (
        _sample(
            text,
            "kb_http_request_duration_seconds_count",
            route="/api/ask",
            method="POST",
            status="200",
        )
        >= 1
    )
    assert _sample(text, "kb_retrieval_seconds_count") >= 1
    assert _sample(text, "kb_vector_search_seconds_count") >= 1
    assert _sample(text, "kb_embedding_seconds_count", kind="query") >= 1
    assert _sample(text, "kb_errors_total", code="VALIDATION_ERROR") >= 1
    # The sample corpus was ingested in this process.
    assert _sample(text, "kb_ingest_runs_total", status="finished") >= 1
    assert _sample(text, "kb_ingest_chunks_total") > 0
    assert _sample(text, "kb_ingest_stage_seconds_total", stage="embed") > 0
    # Live from the database at each scrape.
    assert _sample(text, "kb_ingest_runs", status="queued") == 0
    assert "kb_support_queue_groups" in text and "kb_notifications" in text
    # One series per route template, not per URL.
    client.get("/api/documents/doc-1", headers=EMPLOYEE)
    client.get("/api/documents/doc-2", headers=EMPLOYEE)
    again = client.get("/metrics").text
    assert 'route="/api/documents/{document_id}"' in again
    assert "doc-1" not in again


def test_metrics_token_and_switch(sample_kb) -> None:  # type: ignore[no-untyped-def]
    kb, db, _ = sample_kb
    guarded = kb.settings.model_copy(update={"metrics": MetricsSettings(token="s3cret")})
    with TestClient(create_app(guarded, lifespan=serving(kb, db))) as c:
        assert c.get("/metrics").status_code == 401
        ok = c.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "kb_ask_total" in ok.text
    off = kb.settings.model_copy(update={"metrics": MetricsSettings(enabled=False)})
    with TestClient(create_app(off, lifespan=serving(kb, db))) as c:
        assert c.get("/metrics").status_code == 404


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\n---\n{text[-3000:]}") from None
    return records


@pytest.mark.slow  # starts server processes
def test_json_logs_every_line_with_request_ids(tmp_path: Path) -> None:
    """A real `kb serve`: uvicorn's lines, the access log and the app's warnings are JSON, and
    the lines of one request share its id."""
    env = light_env(tmp_path / "var", KB_LOG__FORMAT="json", KB_LOG__LEVEL="info")
    with serve(env, tmp_path / "serve.log") as served:
        status, headers, _ = get(f"{served.url}/api/documents", {"X-Request-ID": "json-req-1"})
        assert status == 401 and headers["x-request-id"] == "json-req-1"
        get(f"{served.url}/healthz")
    records = _json_lines(served.log())
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "kb.access"} <= loggers, loggers
    assert any("Uvicorn running on" in str(r["message"]) for r in records)
    mine = [r for r in records if r.get("request_id") == "json-req-1"]
    # The refusal's warning (api.errors) and the access line, both with the request's id.
    assert {r["logger"] for r in mine} >= {"kb.api.errors", "kb.access"}, mine
    access = next(r for r in mine if r["logger"] == "kb.access")
    assert (
        access["status"] == 401
        and access["route"] == "/api/documents"
        and access["duration_ms"] >= 0
    )
    assert all(r.get("request_id") for r in records if r["logger"] == "kb.access")
    assert "uvicorn.access" not in loggers  # one access log: the app's


@pytest.mark.slow  # starts server processes
def test_json_logs_warnings_and_thread_errors(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import logging, threading, warnings
        from kb.retrieval.logs import REQUEST_ID, configure_logging
        from kb.retrieval.ops_settings import LogSettings
        configure_logging(LogSettings(format="json", level="INFO"))
        warnings.warn("a library's deprecation", UserWarning)
        token = REQUEST_ID.set("rid-7")
        logging.getLogger("kb.ingest.pipeline").info("inside %s", "a request", extra={"n": 3})
        REQUEST_ID.reset(token)
        t = threading.Thread(target=lambda: 1 / 0, name="worker-1")
        t.start(); t.join()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    records = _json_lines(done.stderr)
    by_logger = {r["logger"]: r for r in records}
    assert "a library's deprecation" in str(by_logger["py.warnings"]["message"])
    inside = by_logger["kb.ingest.pipeline"]
    assert inside["request_id"] == "rid-7" and inside["n"] == 3
    assert "ZeroDivisionError" in str(by_logger["kb.uncaught"]["exception"])


@pytest.mark.slow  # starts server processes
def test_text_format_names_the_logger_and_request(tmp_path: Path) -> None:
    script = (
        "import logging; from kb.retrieval.logs import REQUEST_ID, configure_logging;"
        "from kb.retrieval.ops_settings import LogSettings;"
        "configure_logging(LogSettings());REQUEST_ID.set('rid-9');"
        "logging.getLogger('kb.example').warning('hello')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert re.search(r"WARNING\s+kb\.example \[rid-9\] hello", done.stderr), done.stderr


@pytest.mark.slow  # starts server processes
def test_metrics_of_several_workers_are_summed(tmp_path: Path) -> None:
    """`kb serve --workers N` shares a multiprocess folder: a scrape of any worker counts the
    questions of all (prometheus-client's multiprocess mode)."""
    env = {**light_env(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    (tmp_path / "prom").mkdir()
    record = "from kb.retrieval.telemetry import record_ask; record_ask('answered', 'ja')"
    for _ in range(2):  # two worker processes, one question each
        subprocess.run([sys.executable, "-c", record], env=env, check=True, timeout=60)
    show = "from kb.retrieval.telemetry import exposition; print(exposition()[0].decode())"
    out = subprocess.run(
        [sys.executable, "-c", show],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    assert _sample(out, "kb_ask_total", outcome="answered", lang="ja") == 2
