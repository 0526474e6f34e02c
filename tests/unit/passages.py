"""Search results built by hand for the unit tests of what reorders them."""

from __future__ import annotations

from kb.retrieval.models import Chunk, ChunkKind, Location, ScoredChunk


def passage(
    i: int,
    text: str,
    score: float,
    *,
    title: str = "",
    kind: ChunkKind = "text",
    signals: dict[str, float] | None = None,
) -> ScoredChunk:
    """Document ``d<i>``'s one passage, ``text``, fused to ``score`` (English, open to all);
    ``signals``: the search's (its fused score by default)."""
    chunk = Chunk(
        document_id=f"d{i}",
        version=1,
        index=0,
        text=text,
        title=title or f"Doc {i}",
        source_path=f"d{i}.md",
        location=Location(),
        lang="en",
        start=0,
        end=len(text),
        groups=(),
        doc_hash=f"h{i}",
        kind=kind,
    )
    return ScoredChunk(
        chunk=chunk, score=score, signals={"fused": score} if signals is None else signals
    )
