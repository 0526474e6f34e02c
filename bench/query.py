"""``/api/ask`` latency against the floor of query embedding + vector search, and throughput.

1. ``kb serve`` (the real uvicorn server, one worker, embedded store) on a loopback port over
   the ingested sample corpus. Every example question of ``eval/cases/sample.jsonl`` is asked
   once over HTTP, with the asker's groups: client-side latency per question.
2. Concurrent clients for a fixed time: sustained questions per second (how many users).
3. The server stopped, in this process on the same store: per question the floor (the query
   embedding plus one hybrid search call, exactly the store call the app makes) and the
   in-process ``KnowledgeBase.ask`` stage timings (``timings_ms``). What the HTTP latency adds
   over ``ask`` is the API's share: routing, auth, screening, the query log, the queue.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, percentile
from bench.ingest import bench_env, kb_ingest

CASES = ROOT / "eval" / "cases" / "sample.jsonl"


def load_cases() -> list[dict[str, Any]]:
    """The sample knowledge base's example questions."""
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def headers(case: dict[str, Any], user: str = "bench") -> dict[str, str]:
    """Development identity of an employee with the case's groups."""
    return {
        "X-User-Id": user,
        "X-User-Roles": "employee",
        "X-User-Groups": ",".join(case.get("groups") or []),
    }


class Server:
    """``kb serve`` in a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = bench_env(
            data_dir,
            # Header identity for the benchmark client; rate limits off (issue 8 settings).
            KB_AUTH__DEV_HEADERS="true",
            KB_LIMITS__USER_PER_MINUTE="0",
            KB_LIMITS__ADDRESS_PER_MINUTE="0",
        )
        self.log = (data_dir / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/kb"), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 300) -> float:
        """Seconds until ``/readyz`` answers 200."""
        import httpx

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kb serve exited; see {self.log.name}")
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kb serve not ready after {timeout} s; see {self.log.name}")

    def stop(self) -> None:
        """Stop the server and wait until it has released the store."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def ask_http(base: str, cases: list[dict[str, Any]]) -> tuple[list[float], float]:
    """Latency of each question (ms), and the first question's latency after start."""
    import httpx

    times: list[float] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        t0 = time.perf_counter()
        resp = client.post("/api/ask", json={"question": cases[0]["text"]}, headers=headers({}))
        first = (time.perf_counter() - t0) * 1000
        if resp.status_code != 200:
            raise RuntimeError(f"/api/ask answered {resp.status_code}: {resp.text[:300]}")
        for case in cases:
            t0 = time.perf_counter()
            resp = client.post("/api/ask", json={"question": case["text"]}, headers=headers(case))
            times.append((time.perf_counter() - t0) * 1000)
            resp.raise_for_status()
    return times, first


def throughput(
    base: str, cases: list[dict[str, Any]], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` threads asking back to back for ``seconds``: questions/s and latency."""
    import httpx

    stop = time.perf_counter() + seconds
    lat: list[float] = []
    errors = 0
    lock = threading.Lock()

    def worker(n: int) -> None:
        nonlocal errors
        i = n
        with httpx.Client(base_url=base, timeout=120) as client:
            while time.perf_counter() < stop:
                case = cases[i % len(cases)]
                i += clients
                t0 = time.perf_counter()
                resp = client.post(
                    "/api/ask", json={"question": case["text"]}, headers=headers(case, f"u{n}")
                )
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if resp.status_code == 200:
                        lat.append(ms)
                    else:
                        errors += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "clients": clients,
        "questions": len(lat),
        "errors": errors,
        "per_s": round(len(lat) / elapsed, 2),
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p95_ms": round(percentile(lat, 95), 1) if lat else None,
    }


def in_process(data_dir: Path, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Per question: the floor (embed + one search) and ``KnowledgeBase.ask`` stage timings."""
    from kb.retrieval.embedders import build_embedders, dense_queries
    from kb.retrieval.lang import detect_lang, other_lang
    from kb.retrieval.lexicon import translated_query
    from kb.retrieval.models import AccessFilter
    from kb.retrieval.service import KnowledgeBase
    from kb.retrieval.settings import Settings
    from kb.retrieval.versions import overfetch

    settings = Settings(data_dir=data_dir)
    kb = KnowledgeBase.open(settings)
    try:
        kb.warm_up()
        cfg = settings.retrieval
        # Its own model instance: the app's remembers recent questions (for the queue).
        embedder = build_embedders(settings.embedder)[0]
        embedder.warm_up()
        embedder.embed_query("warm up")
        floor: list[float] = []
        embed: list[float] = []
        stages: dict[str, list[float]] = {}
        for case in cases:
            acl = AccessFilter(groups=tuple(case.get("groups") or []))
            sparse = kb.sparse.encode_query(case["text"])
            translated = translated_query(
                kb.translations(case["text"]),
                detect_lang(case["text"]),
                cfg.cross_lang_terms_weight,
            )
            t0 = time.perf_counter()
            vector = embedder.embed_query(case["text"])
            t1 = time.perf_counter()
            dense = dense_queries(
                embedder.name,
                vector,
                title_vectors=settings.embedder.title_vectors,
                cross_lang=other_lang(detect_lang(case["text"])),
                cross_lang_weight=cfg.cross_lang_weight,
            )
            kb.store.search(
                dense=dense,
                sparse=sparse,
                top_k=overfetch(cfg.top_k),
                acl=acl,
                prefetch_k=cfg.prefetch_k,
                fusion=kb.fusion(),
                translated=translated,
            )
            t2 = time.perf_counter()
            floor.append((t2 - t0) * 1000)
            embed.append((t1 - t0) * 1000)
            result = kb.ask(case["text"], acl=acl)
            for name, ms in result.timings_ms.items():
                stages.setdefault(name, []).append(ms)
    finally:
        kb.close()
    return {"floor": floor, "embed": embed, "stages": stages}


def run(
    workdir: Path, log: Any, *, data_dir: Path | None = None, load_seconds: float = 30
) -> dict[str, Any]:
    """The query figures; ingests the sample corpus first when ``data_dir`` is not given."""
    cases = load_cases()
    if data_dir is None:
        data_dir = workdir / "ingest-data"
        log("query: ingesting the sample corpus first ...")
        kb_ingest(data_dir)
    log("query: starting kb serve ...")
    server = Server(data_dir)
    try:
        ready_s = server.wait_ready()
        log(f"query: ready in {ready_s:.1f} s; asking {len(cases)} questions over HTTP ...")
        http_ms, first_ms = ask_http(server.base, cases)
        load: dict[str, Any] = {}
        if load_seconds > 0:
            for clients in (1, 4):
                log(f"query: {clients} concurrent client(s) for {load_seconds:.0f} s ...")
                load[str(clients)] = throughput(server.base, cases, clients, load_seconds)
    finally:
        server.stop()
    log("query: floor and stage timings in process ...")
    inner = in_process(data_dir, cases)
    floor, http = inner["floor"], http_ms
    stages = {k: round(statistics.mean(v), 2) for k, v in inner["stages"].items()}
    stages["api (auth, screening, query log, queue, HTTP)"] = round(
        statistics.mean(http) - stages.get("total_ms", 0.0), 2
    )
    return {
        "questions": len(cases),
        "ready_s": round(ready_s, 1),
        "first_question_ms": round(first_ms, 1),
        "http_mean_ms": round(statistics.mean(http), 2),
        "http_p50_ms": round(statistics.median(http), 2),
        "http_p95_ms": round(percentile(http, 95), 2),
        "floor_mean_ms": round(statistics.mean(floor), 2),
        "floor_p50_ms": round(statistics.median(floor), 2),
        "embed_mean_ms": round(statistics.mean(inner["embed"]), 2),
        "query_ratio": round(statistics.mean(http) / statistics.mean(floor), 3),
        "query_ratio_p50": round(statistics.median(http) / statistics.median(floor), 3),
        "stages_mean_ms": stages,
        "throughput": load,
    }
