"""Deterministic vectors and chunks for the vector store contract: no models, real stores."""

from __future__ import annotations

import hashlib

import numpy as np

from kb.retrieval.models import Chunk, EmbeddedChunk, Lang, Location, SparseVector
from kb.retrieval.sparse import term_id

DIMS = {"e5": 16, "use": 12}
"""Two named dense vectors of different sizes, as with two embedders."""


def unit(seed: str, dim: int) -> list[float]:
    """A SHA-256-seeded random unit vector: the same seed always gives the same vector."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
    v = rng.normal(size=dim)
    return [float(x) for x in v / np.linalg.norm(v)]


def sparse(**weights: float) -> SparseVector:
    """BM25-style sparse vector from ``term=weight``."""
    items = sorted((term_id(t), w) for t, w in weights.items())
    return SparseVector(indices=[i for i, _ in items], values=[w for _, w in items])


def make_chunk(
    document_id: str,
    index: int = 0,
    *,
    groups: tuple[str, ...] = (),
    doc_hash: str = "h1",
    text: str | None = None,
    lang: Lang = "en",
) -> Chunk:
    text = text or f"{document_id} chunk {index}"
    return Chunk(
        document_id=document_id,
        version=1,
        index=index,
        text=text,
        title=f"{document_id} title",
        source_path=f"docs/{document_id}.md",
        location=Location(heading_path=("Setup", "Wi-Fi"), page=index + 1),
        lang=lang,
        start=index * 100,
        end=index * 100 + len(text),
        groups=groups,
        doc_hash=doc_hash,
    )


def embed(
    chunk: Chunk, terms: SparseVector | None = None, *, seed: str | None = None
) -> EmbeddedChunk:
    """Vectors seeded by the chunk's identity (or ``seed``): see :func:`vectors`."""
    return EmbeddedChunk(
        chunk=chunk,
        dense=vectors(seed or f"{chunk.document_id}:{chunk.doc_hash}:{chunk.index}"),
        sparse=terms or SparseVector([], []),
    )


def vectors(seed: str) -> dict[str, list[float]]:
    return {name: unit(f"{name}:{seed}", dim) for name, dim in DIMS.items()}
