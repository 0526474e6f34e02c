"""Sections to chunks with llama-index's ``SentenceSplitter``, never across a section boundary.

Sections already follow the headings (parsers cut there), so a chunk belongs to one heading
path, page or slide. Inside a section the splitter packs whole sentences, Japanese 。！？ ends
included, up to ``chunk_size`` tokens. With ``whole_size`` above ``chunk_size``, a section of up
to ``whole_size`` tokens stays one chunk and only longer ones are cut, so that small chunks serve
the long sections of a manual while a short section keeps its heading with its steps
(docs/experiments.md, "whole short sections"). Q&A entries are one chunk each, whatever their
length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kb.retrieval.lang import detect_lang
from kb.retrieval.models import Chunk, ParsedDocument
from kb.retrieval.text import sentence_pieces


class Chunker:
    """Turns a parsed document into chunks with full provenance."""

    def __init__(self, chunk_size: int = 320, chunk_overlap: int = 40, whole_size: int = 0) -> None:
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.whole_size = whole_size
        self._splitter: Any = None
        self._tokens: Any = None

    def _fits_whole(self, text: str) -> bool:
        """Whether ``text`` is at most ``whole_size`` tokens (the splitter's tokenizer)."""
        if self.whole_size <= self.chunk_size:
            return False  # the splitter alone decides
        if self._tokens is None:
            from llama_index.core.utils import get_tokenizer

            self._tokens = get_tokenizer()
        return len(self._tokens(text)) <= self.whole_size

    def _split(self, text: str) -> list[str]:
        if self._splitter is None:
            from llama_index.core.node_parser import SentenceSplitter

            self._splitter = SentenceSplitter(
                chunk_size=self.chunk_size,
                chunk_overlap=self.chunk_overlap,
                paragraph_separator="\n\n",
                chunking_tokenizer_fn=sentence_pieces,
            )
        pieces: list[str] = self._splitter.split_text(text)
        return pieces

    def chunk(
        self,
        parsed: ParsedDocument,
        *,
        document_id: str,
        source_path: str,
        groups: Sequence[str],
        version: int,
        doc_hash: str,
    ) -> list[Chunk]:
        """Chunks of ``parsed`` in document order; ``start``/``end`` index ``parsed.text``."""
        chunks: list[Chunk] = []
        for section in parsed.sections:
            if not section.text.strip():
                continue
            section_groups = tuple(getattr(section, "groups", None) or groups)
            if section.kind == "qa":
                pieces = [(section.text, 0)]
            elif self._fits_whole(section.text):
                pieces = _locate(section.text, [section.text.strip()])
            else:
                pieces = _locate(section.text, self._split(section.text))
            for text, offset in pieces:
                start = section.start + offset
                chunks.append(
                    Chunk(
                        document_id=document_id,
                        version=version,
                        index=len(chunks),
                        text=text,
                        title=parsed.title,
                        source_path=source_path,
                        location=section.location,
                        lang=detect_lang(f"{section.question or ''} {text}"),
                        start=start,
                        end=start + len(text),
                        groups=section_groups,
                        kind=section.kind,
                        question=section.question,
                        doc_hash=doc_hash,
                    )
                )
        return chunks


def _locate(section_text: str, pieces: list[str]) -> list[tuple[str, int]]:
    """Offsets of each piece in the section. The splitter may trim whitespace at the edges, so
    search forward from the previous piece's start by a prefix of the piece."""
    out: list[tuple[str, int]] = []
    cursor = 0
    for piece in pieces:
        probe = piece[:40]
        at = section_text.find(probe, cursor)
        if at < 0:
            at = section_text.find(probe)
        at = max(at, 0)
        out.append((piece, at))
        cursor = at + 1
    return out
