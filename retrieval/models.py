"""The vocabulary of the knowledge base, written down once.

- **Document**: one source file (a manual, a Q&A sheet, a staff answer). Identified by a stable
  ``document_id`` derived from its source and relative path.
- **Section**: a run of text inside a document that shares one location (heading path, page,
  slide, sheet row). Parsers produce sections; the chunker never crosses a section boundary.
- **Chunk**: the indexed unit, a piece of one section with its provenance.
- **Point**: the Qdrant record for a chunk (id, dense and sparse vectors, payload).
- **Passage**: a chunk returned by a search, with its score.

Nothing here imports Qdrant, llama-index or a model: these are plain data shared by every layer.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Literal

PUBLIC_GROUP = "__public__"
"""Group stored on documents with no access groups, so one ``MatchAny`` filter serves everyone."""

Lang = Literal["ja", "en"]
ChunkKind = Literal["text", "qa"]

_POINT_NAMESPACE = uuid.UUID("7b0f3a52-3c1e-4d8a-9c55-2f1e6f0b9a10")


def sha256_text(text: str) -> str:
    """Hex SHA-256 of ``text`` encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Location:
    """Where a passage sits in its source, as precisely as the format allows."""

    heading_path: tuple[str, ...] = ()
    page: int | None = None
    slide: int | None = None
    sheet: str | None = None
    row: int | None = None
    anchor: str | None = None

    def label(self) -> str:
        """Human-readable location, e.g. ``"p. 3 · Setup > Wi-Fi"``."""
        parts: list[str] = []
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.slide is not None:
            parts.append(f"slide {self.slide}")
        if self.sheet is not None:
            parts.append(f"{self.sheet}" + (f" row {self.row}" if self.row is not None else ""))
        elif self.row is not None:
            parts.append(f"row {self.row}")
        if self.heading_path:
            parts.append(" > ".join(self.heading_path))
        return " · ".join(parts)

    def fragment(self) -> str:
        """URL fragment that opens the source at this location (``#page=3``, ``#anchor``)."""
        if self.page is not None:
            return f"#page={self.page}"
        if self.anchor:
            return f"#{self.anchor}"
        if self.slide is not None:
            return f"#slide-{self.slide}"
        if self.row is not None:
            return f"#{self.row_anchor()}"
        return ""

    def row_anchor(self) -> str:
        """Element id of a spreadsheet row in the source view (``row-12``, ``prices-row-12``)."""
        sheet = re.sub(r"[^0-9A-Za-z]+", "-", self.sheet or "").strip("-").lower()
        return f"{sheet}-row-{self.row}" if sheet else f"row-{self.row}"

    def to_payload(self) -> dict[str, object]:
        """Plain-JSON form stored in a point's payload."""
        return {
            "heading_path": list(self.heading_path),
            "page": self.page,
            "slide": self.slide,
            "sheet": self.sheet,
            "row": self.row,
            "anchor": self.anchor,
        }

    @classmethod
    def from_payload(cls, data: dict[str, object]) -> Location:
        """Inverse of :meth:`to_payload`."""
        heading = data.get("heading_path") or []
        assert isinstance(heading, list)
        page, slide, row = data.get("page"), data.get("slide"), data.get("row")
        sheet, anchor = data.get("sheet"), data.get("anchor")
        return cls(
            heading_path=tuple(str(h) for h in heading),
            page=int(page) if isinstance(page, int) else None,
            slide=int(slide) if isinstance(slide, int) else None,
            sheet=str(sheet) if sheet is not None else None,
            row=int(row) if isinstance(row, int) else None,
            anchor=str(anchor) if anchor is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Section:
    """A parsed run of text sharing one location. ``start`` is its offset in the document text."""

    text: str
    location: Location = field(default_factory=Location)
    start: int = 0
    kind: ChunkKind = "text"
    question: str | None = None
    """For Q&A entries: the question; ``text`` then holds the answer."""
    groups: tuple[str, ...] | None = None
    """Access groups of this section alone (a Q&A sheet's ``groups`` column); ``None`` inherits
    the document's groups."""


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """What a parser returns for one file."""

    title: str
    sections: list[Section]
    lang: Lang
    text: str
    """The document's full extracted text; section and chunk offsets index into it."""
    warnings: tuple[str, ...] = ()
    """What the parser changed or dropped (control characters, invalid UTF-8), for the run's
    report (issue 20)."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """The indexed unit. ``text`` is what is shown; ``embed_text`` what the models see."""

    document_id: str
    version: int
    index: int
    text: str
    title: str
    source_path: str
    location: Location
    lang: Lang
    start: int
    end: int
    groups: tuple[str, ...]
    kind: ChunkKind = "text"
    question: str | None = None
    doc_hash: str = ""

    @property
    def content_hash(self) -> str:
        """Hash of the text the embedders see: the key of the embedding cache."""
        return sha256_text(self.embed_text)

    @property
    def embed_text(self) -> str:
        """Text given to the embedding models: title and heading path give a chunk its context."""
        if self.kind == "qa" and self.question:
            return f"{self.question}\n{self.text}"
        context = " > ".join((self.title, *self.location.heading_path))
        return f"{context}\n{self.text}"

    @property
    def title_text(self) -> str:
        """The chunk's short field: a Q&A entry's question, else the title and heading path.
        Indexed as its own vector so a question can match a FAQ question or a section name."""
        if self.kind == "qa" and self.question:
            return self.question
        return " > ".join((self.title, *self.location.heading_path))

    @property
    def point_id(self) -> str:
        """Deterministic Qdrant point id: same document version and position, same point."""
        return str(uuid.uuid5(_POINT_NAMESPACE, f"{self.document_id}:{self.doc_hash}:{self.index}"))

    def payload(self) -> dict[str, object]:
        """The point payload; keys are indexed by the stores where filtering needs them."""
        return {
            "document_id": self.document_id,
            "version": self.version,
            "doc_hash": self.doc_hash,
            "chunk_index": self.index,
            "text": self.text,
            "title": self.title,
            "source_path": self.source_path,
            "location": self.location.to_payload(),
            "lang": self.lang,
            "start": self.start,
            "end": self.end,
            "groups": list(self.groups) if self.groups else [PUBLIC_GROUP],
            "kind": self.kind,
            "question": self.question,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> Chunk:
        """Rebuild a chunk from a point payload."""
        groups = payload.get("groups") or []
        assert isinstance(groups, list)
        location = payload.get("location") or {}
        assert isinstance(location, dict)
        question = payload.get("question")
        lang = payload.get("lang")
        kind = payload.get("kind")
        return cls(
            document_id=str(payload["document_id"]),
            version=int(str(payload.get("version", 1))),
            index=int(str(payload.get("chunk_index", 0))),
            text=str(payload.get("text", "")),
            title=str(payload.get("title", "")),
            source_path=str(payload.get("source_path", "")),
            location=Location.from_payload(location),
            lang="ja" if lang == "ja" else "en",
            start=int(str(payload.get("start", 0))),
            end=int(str(payload.get("end", 0))),
            groups=tuple(str(g) for g in groups if g != PUBLIC_GROUP),
            kind="qa" if kind == "qa" else "text",
            question=str(question) if question else None,
            doc_hash=str(payload.get("doc_hash", "")),
        )


@dataclass(frozen=True, slots=True)
class SparseVector:
    """BM25 term weights: ``indices`` are hashed term ids, ``values`` their weights."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class EmbeddedChunk:
    """A chunk with its vectors, ready to become a point. ``dense`` maps vector name to vector."""

    chunk: Chunk
    dense: dict[str, list[float]]
    sparse: SparseVector


@dataclass(frozen=True, slots=True)
class AccessFilter:
    """The groups a user may read. Public documents are always readable."""

    groups: tuple[str, ...] = ()

    def allowed(self) -> list[str]:
        """Group values to match in the store (the user's groups plus the public marker)."""
        return sorted({PUBLIC_GROUP, *self.groups})

    def permits(self, groups: tuple[str, ...] | list[str]) -> bool:
        """True when a document with ``groups`` may be shown (no groups means public)."""
        return not groups or PUBLIC_GROUP in groups or bool(set(groups) & set(self.groups))


@dataclass(frozen=True, slots=True)
class DenseQuery:
    """One dense vector to search with, by vector name."""

    name: str
    vector: list[float]
    lang: Lang | None = None
    """Search only chunks in this language (the cross-language prefetch); ``None``: all."""
    weight: float | None = None
    """This prefetch's fusion weight; ``None``: the fusion's ``dense_weight``."""


@dataclass(frozen=True, slots=True)
class SparseQuery:
    """A BM25 query over the chunks of one language only: the question's translation
    (:func:`retrieval.lexicon.translated_query`), one prefetch of its own."""

    vector: SparseVector
    lang: Lang
    weight: float
    """This prefetch's fusion weight."""


FusionMethod = Literal["minmax", "rrf"]


@dataclass(frozen=True, slots=True)
class Fusion:
    """How the prefetches' hits combine into one ranking, with each prefetch's weight.

    ``rrf`` (the default): weighted reciprocal rank fusion as Qdrant computes it (Edge and
    server alike): a passage at ``rank`` (from 0) in a prefetch of weight ``w`` gains
    ``1 / (k - 1 + (rank + 1) / w)``, the classic ``1 / (k + rank)`` at ``w = 1``. A weight below
    1 stretches the ranks rather than scaling the score (the contract tests pin this).

    ``minmax``: each prefetch's scores are min-max normalised over its own hits (its best 1, its
    last 0), weighted and summed; a passage a prefetch did not return gains nothing from it. A
    score-aware fusion reads how far apart the scores are, which rank fusion throws away: when
    BM25 finds one section far ahead and the dense neighbours are all about as close, the
    section stays first (docs/experiments.md, "Score-aware fusion")."""

    k: int = 2
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    method: FusionMethod = "rrf"
    section_dense_scale: float = 1.0
    """``minmax``: scales the same-language dense prefetches' weights for a passage that is not
    a Q&A entry (rank fusion's score is left as it is)."""

    def gain(self, rank: int, weight: float) -> float:
        """What a prefetch of ``weight`` adds to the reciprocal-rank fused score of its passage
        at ``rank``."""
        return 1.0 / (self.k - 1 + (rank + 1) / weight) if weight > 0 else 0.0

    def best(self, weight: float) -> float:
        """What a prefetch of ``weight`` adds to the fused score of the passage it ranks first."""
        if self.method == "rrf":
            return self.gain(0, weight)
        return max(weight, 0.0)


DEFAULT_FUSION = Fusion()


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A passage: a chunk returned by a search. ``score`` is the fused score; ``signals`` the
    per-retriever scores (``dense:<name>`` cosine, ``bm25``) that calibrate confidence."""

    chunk: Chunk
    score: float
    signals: dict[str, float] = field(default_factory=dict)
