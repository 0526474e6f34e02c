"""Synthetic chunks shaped like the app's points: the e5 text and title vectors (384-d, unit
length), BM25 terms with a Zipf distribution, access groups and a realistic payload."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kb.retrieval.models import (
    AccessFilter,
    Chunk,
    DenseQuery,
    EmbeddedChunk,
    Location,
    SparseVector,
)

GROUPS = ("hr", "finance", "sales", "legal", "it")
"""Every fifth chunk is restricted to one of these; the rest are public."""
VOCAB = 50_000
DIM = 384
"""multilingual-e5-small (``E5Embedder.dim``)."""
VECTORS = ("e5", "e5_title")
"""The dense vectors the default configuration stores per chunk."""


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs


def chunks(start: int, n: int, *, dim: int = DIM, seed: int = 0) -> list[EmbeddedChunk]:
    """Chunks ``start`` .. ``start + n - 1``; the same ids always give the same chunks."""
    rng = np.random.default_rng((seed, start))
    dense = {name: _unit(rng, n, dim) for name in VECTORS}
    out: list[EmbeddedChunk] = []
    for j in range(n):
        i = start + j
        terms = np.unique(rng.zipf(1.3, size=40) % VOCAB)[:30]
        tf = rng.integers(1, 5, size=len(terms)).astype(np.float32)
        weights = tf * 2.2 / (tf + 1.2)  # BM25 saturation, k1 = 1.2
        doc = i // 8
        chunk = Chunk(
            document_id=f"doc{doc}",
            version=1,
            index=i % 8,
            text=f"synthetic passage {i} about topic {doc % 997} " * 12,
            title=f"Document {doc}",
            source_path=f"docs/doc{doc}.md",
            location=Location(heading_path=("Chapter", f"Section {i % 8}"), page=i % 8 + 1),
            lang="en" if i % 2 else "ja",
            start=0,
            end=400,
            groups=(GROUPS[(i // 5) % 5],) if i % 5 == 0 else (),
            doc_hash=f"h{doc}",
        )
        sparse = SparseVector([int(t) for t in terms], [float(w) for w in weights])
        vectors = {name: dense[name][j].tolist() for name in VECTORS}
        out.append(EmbeddedChunk(chunk=chunk, dense=vectors, sparse=sparse))
    return out


def batches(total: int, size: int, *, dim: int = DIM) -> Iterator[list[EmbeddedChunk]]:
    """``total`` chunks in batches of ``size``."""
    for start in range(0, total, size):
        yield chunks(start, min(size, total - start), dim=dim)


def queries(
    n: int, *, dim: int = DIM, seed: int = 1
) -> list[tuple[list[DenseQuery], SparseVector]]:
    """Hybrid queries as the app sends them: one e5 vector for both dense prefetches, and a
    few BM25 terms."""
    rng = np.random.default_rng(seed)
    vecs = _unit(rng, n, dim)
    out = []
    for i in range(n):
        terms = sorted({int(t) for t in rng.zipf(1.3, size=5) % VOCAB})
        vector = vecs[i].tolist()
        dense = [DenseQuery(name, vector) for name in VECTORS]
        out.append((dense, SparseVector(terms, [1.0] * len(terms))))
    return out


ACL = AccessFilter(groups=("hr",))
"""A user in one group: public chunks plus a tenth of the restricted ones."""
