"""Ingestion and re-sync against the pure embedding time of the same chunks.

1. ``kb ingest docs_corpus/ --json`` in a subprocess, on a fresh data folder (empty embedding
   cache, so every chunk is really embedded): wall time, and the run's per-stage seconds.
2. The same command again over the unchanged corpus: the re-sync.
3. In this process, with the model loaded: embedding exactly the texts the ingestion embedded
   (each chunk's text and short field, de-duplicated by content hash in ingestion order, in
   batches of ``embedder.batch_size``). That is the floor ingestion cannot go under.

Two ingest ratios against that floor: the whole ``kb ingest`` process's wall time (the bench's
ratio since issue 9, and what a user waits for: Python start, imports, model load, the run,
exit), and the run's own seconds (the run report's ``seconds``, first file to last: what the
pipeline adds to embedding, without the fixed costs of a process).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT

CORPUS = ROOT / "docs_corpus"


def bench_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``kb`` subprocess on ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(
        KB_DATA_DIR=str(data_dir),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        SCARF_NO_ANALYTICS="true",
        DO_NOT_TRACK="true",
        TOKENIZERS_PARALLELISM="false",
        # Nothing may hand the run to a service someone else is running on the default port.
        KB_SERVICE_URL="http://127.0.0.1:9",
    )
    env.update(extra)
    return env


def kb_ingest(data_dir: Path) -> tuple[float, dict[str, Any]]:
    """Run ``kb ingest docs_corpus/ --json``; :returns: wall seconds and the run report."""
    kb = ROOT / ".venv" / "bin" / "kb"
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(kb), "ingest", str(CORPUS), "--json"],
        env=bench_env(data_dir),
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"kb ingest failed: {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return wall, report


def ingested_texts(data_dir: Path, report: dict[str, Any]) -> list[list[str]]:
    """Per embedding call of the ingestion (per document, text field then short field), the
    texts that missed the cache, in order: what the model really embedded."""
    from kb.retrieval.settings import Settings
    from kb.retrieval.stores import open_store

    settings = Settings(data_dir=data_dir)
    store = open_store(settings)
    calls: list[list[str]] = []
    seen: set[str] = set()
    try:
        for f in report["files"]:
            if f["outcome"] not in ("added", "updated"):
                continue
            chunks = [p.chunk for p in store.document_chunks(f["document_id"])]
            fields = [[c.embed_text for c in chunks]]
            if settings.embedder.title_vectors:
                fields.append([c.title_text for c in chunks])
            for texts in fields:
                todo = list(dict.fromkeys(t for t in texts if t not in seen))
                seen.update(todo)
                calls.append(todo)
    finally:
        store.close()
    return calls


def corpus_texts(data_dir: Path) -> list[str]:
    """Every chunk's embedded text in an ingested data folder, document by document."""
    from sqlalchemy import select

    from kb.db.engine import Database
    from kb.db.models import DocumentRecord
    from kb.retrieval.settings import Settings
    from kb.retrieval.stores import open_store

    settings = Settings(data_dir=data_dir)
    db = Database(settings.db_url())
    with db.session() as s:
        ids = list(s.execute(select(DocumentRecord.id).order_by(DocumentRecord.id)).scalars())
    db.dispose()
    store = open_store(settings)
    try:
        return [p.chunk.embed_text for i in ids for p in store.document_chunks(i)]
    finally:
        store.close()


def pure_embedding(calls: list[list[str]]) -> tuple[float, int]:
    """Seconds the default model takes for these calls, batched as ingestion batches them."""
    from kb.retrieval.embedders import build_embedders
    from kb.retrieval.settings import Settings

    settings = Settings()
    embedder = build_embedders(settings.embedder)[0]
    embedder.warm_up()
    embedder.embed_documents(["warm up"])
    size = settings.embedder.batch_size
    n = 0
    t0 = time.perf_counter()
    for texts in calls:
        for start in range(0, len(texts), size):
            embedder.embed_documents(texts[start : start + size])
        n += len(texts)
    return time.perf_counter() - t0, n


def run(workdir: Path, log: Any) -> dict[str, Any]:
    """Ingest, re-sync, and the embedding floor; :returns: figures and breakdowns."""
    data = workdir / "ingest-data"
    log("ingest: kb ingest docs_corpus/ (fresh data folder, empty embedding cache) ...")
    wall1, rep1 = kb_ingest(data)
    log(f"ingest: {wall1:.1f} s wall, {rep1['embedded_chunks']} texts embedded; re-sync ...")
    wall2, rep2 = kb_ingest(data)
    log(f"ingest: re-sync {wall2:.2f} s; pure embedding of the same texts ...")
    calls = ingested_texts(data, rep1)
    embed_s, n_texts = pure_embedding(calls)
    log(f"ingest: pure embedding {embed_s:.1f} s for {n_texts} texts")
    stages = dict(rep1.get("stages") or {})
    in_run = float(rep1["seconds"])
    stages["other (db, files)"] = in_run - sum(stages.values())
    stages["process start, imports, model load"] = wall1 - in_run
    return {
        "data_dir": str(data),
        "chunks": sum(f.get("chunks", 0) for f in rep1["files"]),
        "files": len(rep1["files"]),
        "texts_embedded_ingest": rep1["embedded_chunks"],
        "texts_embedded_floor": n_texts,
        "ingest_wall_s": round(wall1, 2),
        "ingest_run_s": round(in_run, 2),
        "embed_floor_s": round(embed_s, 2),
        # The bench's ratio since issue 9, and what a user waits for: the whole `kb ingest`
        # process (Python start, imports, model load, the run, exit) against the floor.
        "ingest_ratio": round(wall1 / embed_s, 3),
        # The run alone (first file to last): what the pipeline adds to the embedding.
        "ingest_ratio_run": round(in_run / embed_s, 3),
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "resync_wall_s": round(wall2, 2),
        "resync_run_s": round(float(rep2["seconds"]), 3),
        "resync_unchanged": rep2["unchanged"],
        "resync_ratio": round(wall2 / wall1, 4),
    }
