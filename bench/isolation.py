"""Answers while documents are ingested, and the hostile DOCX (issue 20).

1. ``kb ingest docs_corpus/`` into a fresh data folder, then ``kb serve`` on it (one process,
   embedded store, ingestion in its worker process: the product's defaults).
2. Idle: the sample questions over HTTP, one after another: p50, p95, max.
3. Under ingestion: ``POST /api/ingest`` of a folder of ``--docs`` new documents (text no
   embedding cache has seen) plus the issue's hostile DOCX (200,000 short paragraphs in 0.5
   MB); while the run lasts, the sample questions again, one after another: p50, p95, max,
   against the targets (p95 <= 2 s, max <= 4 s).
4. The hostile DOCX's outcome and seconds from the run's report, and the worker process's
   peak resident memory (``VmHWM``) at the end of the run (target: result within 60 s, under
   1 GB).

The server runs this checkout's code (``python -m kb.cli.main``), whatever ``.venv/bin/kb`` is.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, percentile
from bench.ingest import CORPUS, bench_env
from bench.query import _free_port, load_cases

KB = [sys.executable, "-m", "kb.cli.main"]
OWNER = {"X-User-Id": "bench-owner", "X-User-Roles": "content_owner"}
EMPLOYEE = {"X-User-Id": "bench", "X-User-Roles": "employee"}


def hostile_docx(path: Path, paragraphs: int = 200_000) -> Path:
    """The issue's file: a DOCX of ~0.5 MB holding ``paragraphs`` short paragraphs."""
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    body = "".join(f"<w:p><w:r><w:t>Line {i}</w:t></w:r></w:p>" for i in range(paragraphs))
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    rels = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/word/document.xml" ContentType="{main}"/></Types>',
        )
        z.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rels}" Target="word/document.xml"/></Relationships>',
        )
        z.writestr("word/document.xml", f"<w:document {w}><w:body>{body}</w:body></w:document>")
    return path


def new_documents(folder: Path, n: int) -> None:
    """``n`` Markdown documents of about 300 words that no embedding cache has seen."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    for i in range(n):
        sections = []
        for j in range(4):
            sentences = " ".join(
                f"Step {k} of procedure {tag}-{i}-{j}: check that cabinet {k + j} on floor "
                f"{(i + k) % 9} is locked and log it under ticket {tag}{i}{j}{k}."
                for k in range(4)
            )
            sections.append(f"## Section {j}\n\n{sentences}")
        body = "\n\n".join(sections)
        (folder / f"procedure-{i:03d}.md").write_text(f"# Procedure {tag} {i}\n\n{body}\n")


def _ask_once(client: Any, question: str) -> float:
    t0 = time.perf_counter()
    resp = client.post("/api/ask", json={"question": question}, headers=EMPLOYEE)
    if resp.status_code != 200:
        raise RuntimeError(f"/api/ask answered {resp.status_code}: {resp.text[:300]}")
    return (time.perf_counter() - t0) * 1000


def _stats(ms: list[float]) -> dict[str, float]:
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "max_ms": round(max(ms), 1),
    }


def _worker_hwm_mib(server_pid: int) -> float | None:
    """Peak RSS of the server's ingestion worker (its child running ``ingest.worker``)."""
    import psutil

    for child in psutil.Process(server_pid).children(recursive=True):
        try:
            if "kb.ingest.worker" not in child.cmdline():
                continue
            for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except (OSError, psutil.Error):
            continue
    return None


def hostile_in_worker(workdir: Path) -> dict[str, Any]:
    """The hostile DOCX alone, in a started worker with the product's settings: seconds to
    the result and the worker's peak RSS (the run's figure above also counts the worker's
    start when the file comes first)."""
    from kb.ingest.worker import IngestWorker
    from kb.retrieval.errors import ParseError
    from kb.retrieval.settings import Settings

    settings = Settings()
    path = hostile_docx(workdir / "hostile-alone.docx")
    warm = workdir / "warm.md"
    warm.write_text("# Warm\n\nThe worker is started.\n")
    worker = IngestWorker(settings.embedder, settings.ingest)
    try:
        t0 = time.perf_counter()
        worker.parse(warm, max_bytes=settings.max_file_bytes)
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            worker.parse(path, max_bytes=settings.max_file_bytes)
            outcome = "parsed"
        except ParseError as exc:
            outcome = exc.detail
        seconds = time.perf_counter() - t0
        rss = worker.peak_rss_mb()
    finally:
        worker.close()
    return {
        "bytes": path.stat().st_size,
        "seconds": round(seconds, 2),
        "worker_start_s": round(start_s, 1),
        "outcome": outcome,
        "worker_peak_rss_mib": round(rss, 1),
    }


def run(workdir: Path, log: Any, *, docs: int = 160) -> dict[str, Any]:
    """The section's figures (see the module docstring)."""
    import httpx

    data = workdir / "isolation-data"
    incoming = workdir / "isolation-incoming"
    cache = ROOT / "bench-results" / "cache" / "embeddings.sqlite3"
    cache.parent.mkdir(parents=True, exist_ok=True)
    env = bench_env(
        data,
        PYTHONPATH=str(ROOT),
        KB_EMBEDDING_CACHE=str(cache),  # the sample corpus is embedded once across runs
        KB_AUTH__DEV_HEADERS="true",
        KB_LIMITS__USER_PER_MINUTE="0",
        KB_LIMITS__ADDRESS_PER_MINUTE="0",
        KB_INGEST_ROOTS=f'["{incoming}"]',
    )
    log("isolation: ingesting the sample corpus ...")
    subprocess.run(
        [*KB, "ingest", str(CORPUS)],
        env=env,
        cwd=ROOT,
        check=True,
        timeout=3600,
        stdout=subprocess.DEVNULL,  # the report: the figures table is this run's output
    )
    new_documents(incoming, docs)
    hostile_docx(incoming / "hostile-200k-paragraphs.docx")
    questions = [c["text"] for c in load_cases()]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with (data / "serve.log").open("w") as serve_log:
        server = subprocess.Popen(
            [*KB, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=serve_log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"kb serve did not start; see {serve_log.name}")
                try:
                    if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            with httpx.Client(base_url=base, timeout=120) as client:
                _ask_once(client, questions[0])
                log(f"isolation: {len(questions)} questions, idle ...")
                idle = [_ask_once(client, q) for q in questions]
                log(f"isolation: ingesting {docs} new documents + the hostile DOCX ...")
                started = client.post("/api/ingest", json={"path": str(incoming)}, headers=OWNER)
                if started.status_code != 202:
                    raise RuntimeError(f"/api/ingest answered {started.text[:300]}")
                url = started.json()["url"]
                t0 = time.perf_counter()
                busy: list[float] = []
                i = 0
                while True:
                    run_state = client.get(url, headers=OWNER).json()
                    if run_state["status"] not in ("queued", "running"):
                        break
                    busy.append(_ask_once(client, questions[i % len(questions)]))
                    i += 1
                ingest_s = time.perf_counter() - t0
                hwm = _worker_hwm_mib(server.pid)
                report = client.get(url, headers=OWNER).json()
        finally:
            server.terminate()
            server.wait(60)
    hostile = next(f for f in report["files"] if f["path"].startswith("hostile"))
    alone = hostile_in_worker(workdir)
    log(f"isolation: the hostile DOCX alone: {alone}")
    log(f"isolation: run {report['status']}, {report['added']} added in {ingest_s:.0f} s")
    return {
        "idle": _stats(idle),
        "under_ingestion": _stats(busy),
        "documents": docs,
        "added": report["added"],
        "run_status": report["status"],
        "ingest_s": round(ingest_s, 1),
        "hostile": {
            "outcome": hostile["outcome"],
            "seconds": round(float(hostile["seconds"] or 0), 2),
            "error": hostile["error"],
        },
        "worker_peak_rss_mib": hwm,
        "hostile_alone": alone,
    }
