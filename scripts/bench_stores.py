"""Upsert and hybrid-search latency of the two store adapters on synthetic data.

    .venv/bin/python scripts/bench_stores.py [--points 5000] [--dim 384] [--queries 50]

Random unit vectors (one dense vector, ``e5``), Zipf-distributed BM25 terms, 20% of documents
restricted to one of five groups; every search carries the ACL filter. Not a test: numbers
depend on the machine, ratios are what matter.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retrieval.models import (
    AccessFilter,
    Chunk,
    DenseQuery,
    EmbeddedChunk,
    Location,
    SparseVector,
)
from retrieval.protocols import VectorStore
from retrieval.stores.edge import EdgeStore
from retrieval.stores.server import QdrantServerStore

GROUPS = ("hr", "finance", "sales", "legal", "it")


def synthetic(n: int, dim: int, seed: int = 0) -> list[EmbeddedChunk]:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    out = []
    for i in range(n):
        terms = np.unique(rng.zipf(1.3, size=40) % 20_000)[:30]
        tf = rng.integers(1, 5, size=len(terms)).astype(np.float32)
        weights = tf * 2.2 / (tf + 1.2)  # BM25 saturation, k1 = 1.2, length-normalised away
        groups = (GROUPS[i % 5],) if i % 5 == 0 else ()
        chunk = Chunk(
            document_id=f"doc{i // 4}",
            version=1,
            index=i % 4,
            text=f"synthetic passage {i} " * 20,
            title=f"Document {i // 4}",
            source_path=f"docs/doc{i // 4}.md",
            location=Location(heading_path=("Chapter", "Section"), page=i % 4 + 1),
            lang="en",
            start=0,
            end=400,
            groups=groups,
            doc_hash="h",
        )
        sparse = SparseVector([int(t) for t in terms], [float(w) for w in weights])
        out.append(EmbeddedChunk(chunk=chunk, dense={"e5": vecs[i].tolist()}, sparse=sparse))
    return out


def bench(name: str, store: VectorStore, data: list[EmbeddedChunk], queries: int, dim: int) -> None:
    store.ensure_collection({"e5": dim})
    t0 = time.perf_counter()
    for start in range(0, len(data), 256):
        store.upsert(data[start : start + 256])
    upsert_s = time.perf_counter() - t0
    report = f"{name:<28} upsert {len(data) / upsert_s:8.0f} pts/s ({upsert_s:6.2f} s)"
    print(report + search_line(store, queries, dim))
    if isinstance(store, EdgeStore):
        t0 = time.perf_counter()
        store.optimize()
        print(
            f"{name + ' after optimize()':<28} optimize {time.perf_counter() - t0:6.2f} s"
            + " " * 12
            + search_line(store, queries, dim)
        )
    store.close()


def search_line(store: VectorStore, queries: int, dim: int) -> str:
    rng = np.random.default_rng(1)
    acl = AccessFilter(groups=("hr",))
    times: list[float] = []
    for i in range(queries + 3):
        q = rng.normal(size=dim)
        sparse = SparseVector([int(t) for t in np.unique(rng.zipf(1.3, size=4) % 20_000)], [])
        sparse = SparseVector(sparse.indices, [1.0] * len(sparse.indices))
        t0 = time.perf_counter()
        hits = store.search(
            dense=[DenseQuery("e5", (q / np.linalg.norm(q)).tolist())],
            sparse=sparse,
            top_k=8,
            acl=acl,
            prefetch_k=40,
        )
        if i >= 3:  # warm-up
            times.append((time.perf_counter() - t0) * 1000)
        assert hits
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    return f" | hybrid+ACL search median {statistics.median(times):7.2f} ms, p95 {p95:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--skip-local", action="store_true", help="local mode is slow on disk")
    args = parser.parse_args()
    data = synthetic(args.points, args.dim)
    print(f"{args.points} points, {args.dim}-d, {args.queries} queries (top 8, prefetch 40)")
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[tuple[str, Callable[[], VectorStore]]] = [
            ("Qdrant Edge (on disk)", lambda: EdgeStore(Path(tmp) / "edge", "bench")),
        ]
        if not args.skip_local:
            stores.append(
                (
                    "qdrant-client local mode",
                    lambda: QdrantServerStore("bench", path=Path(tmp) / "local", local_mode=True),
                )
            )
        for name, make in stores:
            bench(name, make(), data, args.queries, args.dim)


if __name__ == "__main__":
    main()
