"""Embedded store at scale: synthetic chunks in Qdrant Edge, hybrid search with the access filter.

Each size is built in one subprocess (insert rate, ``optimize()`` time, disk size) and queried
in a fresh one, so that the resident memory measured is what a process serving that shard
holds: RSS after opening the shard and answering the queries, minus RSS before opening it.

Worker entry (used by :func:`run`): ``python -m bench.store build|query PATH N QUANT``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import synthetic
from bench.common import dir_bytes, parse_size, percentile, rss_bytes

COLLECTION = "bench"
INSERT_BATCH = 2048
QUERIES = 200


def _store(path: Path, quantization: str) -> Any:
    from kb.retrieval.stores.edge import EdgeStore

    return EdgeStore(path, COLLECTION, quantization=quantization)


def build(path: Path, n: int, quantization: str) -> dict[str, Any]:
    """Insert ``n`` synthetic chunks and build the indexes; :returns: rates and sizes."""
    store = _store(path, quantization)
    store.ensure_collection(dict.fromkeys(synthetic.VECTORS, synthetic.DIM))
    gen = insert = 0.0
    t_gen = time.perf_counter()
    for batch_start in range(0, n, INSERT_BATCH):
        batch = synthetic.chunks(batch_start, min(INSERT_BATCH, n - batch_start))
        t0 = time.perf_counter()
        gen += t0 - t_gen
        store.upsert(batch)
        t_gen = time.perf_counter()
        insert += t_gen - t0
    t0 = time.perf_counter()
    store.optimize()
    optimize = time.perf_counter() - t0
    store.close()
    return {
        "points": n,
        "insert_s": round(insert, 2),
        "insert_pts_per_s": round(n / insert, 1),
        "optimize_s": round(optimize, 2),
        "generate_s": round(gen, 2),
        "disk_bytes": dir_bytes(path / COLLECTION),
    }


def query(path: Path, quantization: str) -> dict[str, Any]:
    """Open the built shard in this fresh process and run hybrid + ACL queries as the app does."""
    from kb.retrieval.models import Fusion
    from kb.retrieval.versions import overfetch

    qs = synthetic.queries(QUERIES + 10)
    before = rss_bytes()
    t0 = time.perf_counter()
    store = _store(path, quantization)
    count = store.count()
    open_s = time.perf_counter() - t0
    times: list[float] = []
    hits = 0
    for i, (dense, sparse) in enumerate(qs):
        t0 = time.perf_counter()
        found = store.search(
            dense=dense,
            sparse=sparse,
            top_k=overfetch(8),
            acl=synthetic.ACL,
            prefetch_k=40,
            fusion=Fusion(k=2, dense_weight=0.4, sparse_weight=1.0),
        )
        if i >= 10:  # the first queries page the shard in
            times.append((time.perf_counter() - t0) * 1000)
            hits += len(found)
        # The filter must hold: public chunks or the user's group only.
        assert all(synthetic.ACL.permits(h.chunk.groups) for h in found)
    after = rss_bytes()
    store.close()
    return {
        "points": count,
        "open_s": round(open_s, 2),
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "mean_hits": round(hits / len(times), 1),
        "rss_bytes": after - before,
        "rss_per_100k_mib": round((after - before) / 2**20 / (max(count, 1) / 100_000), 1),
    }


def _worker(action: str, path: Path, n: int, quantization: str, timeout: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.store", action, str(path), str(n), quantization],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.store {action} {n} failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(workdir: Path, sizes: list[int], quantizations: list[str], log: Any) -> dict[str, Any]:
    """Build and query every size (and quantization); :returns: one entry per combination."""
    out: dict[str, Any] = {}
    for n in sizes:
        for quant in quantizations:
            key = f"{n}/{quant}"
            path = workdir / f"store-{n}-{quant}"
            log(f"store: building {n:,} chunks ({quant}) ...")
            built = _worker("build", path, n, quant, timeout=6 * 3600)
            log(
                f"store: {n:,} inserted at {built['insert_pts_per_s']:,.0f} pts/s,"
                f" optimize {built['optimize_s']:.0f} s; querying ..."
            )
            queried = _worker("query", path, n, quant, timeout=3600)
            out[key] = {**built, **queried, "quantization": quant}
            log(
                f"store: {n:,} ({quant}) p50 {queried['p50_ms']} ms, p95 {queried['p95_ms']} ms,"
                f" RSS {queried['rss_bytes'] / 2**20:.0f} MiB,"
                f" disk {built['disk_bytes'] / 2**20:.0f} MiB"
            )
            shutil.rmtree(path, ignore_errors=True)
    return out


def main(argv: list[str]) -> None:
    """Worker entry: ``build|query PATH N QUANT``; prints one JSON line."""
    action, path, n, quant = argv[0], Path(argv[1]), parse_size(argv[2]), argv[3]
    result = build(path, n, quant) if action == "build" else query(path, quant)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
