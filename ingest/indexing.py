"""The one write path into the vector store (issue 26).

Every chunk written to the store, and every point deleted or regrouped, goes through an
:class:`Indexer`: folder syncs and uploads (:mod:`ingest.pipeline`), staff answers
(:mod:`services.staff_answers`), crash recovery (:mod:`ingest.recovery`) and, later, anything
else that teaches the bot (confirmed questions). Nothing else calls ``store.upsert``,
``store.delete_document`` or ``store.set_groups`` (``tests/unit/test_architecture.py`` checks).

Each write unit (one document's new version with its catalog entry, a deletion, a group
change, one document's re-encoded terms, one repair) holds the knowledge base's write lock,
:attr:`retrieval.service.KnowledgeBase.write_lock`, shared by every indexer of that knowledge
base. Two writers therefore never interleave inside one document's write: a staff answer
published during a folder sync waits at most for the document in hand, and neither undoes the
other. Searches take no lock. A run (one folder sync, one upload request) is serialised
against other runs by :attr:`ingest.runner.IngestRunner.lock`, outside this module.

A new version is written new points first, then the previous version's points removed, so
searchers always find one version.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kb.db.engine import Database
from kb.db.models import DocumentRecord, DocumentVersion, utcnow
from kb.ingest.catalog import file_hash, stale_analyzer
from kb.ingest.chunk import Chunker
from kb.ingest.recut import follow_recut
from kb.ingest.runs import FileResult, IngestReport, Outcome
from kb.ingest.sources import SourceFile
from kb.retrieval.embedders import break_title_ties, embed_cached, title_vector
from kb.retrieval.errors import KBError, ParseError
from kb.retrieval.injection import excerpt, find_instructions
from kb.retrieval.lang import detect_lang
from kb.retrieval.models import Chunk, EmbeddedChunk, Location, ParsedDocument, Section
from kb.retrieval.protocols import Embedder
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.sparse import ANALYZER_VERSION

if TYPE_CHECKING:
    from kb.ingest.worker import IngestWorker


@dataclass(frozen=True, slots=True)
class RecordDoc:
    """A document given as text (staff answers, benchmark corpora): Q&A entries are
    ``kind="qa"``, the title being the question."""

    document_id: str
    title: str
    text: str
    kind: Literal["text", "qa"] = "text"
    groups: tuple[str, ...] = ()


class Indexer:
    """Writes documents' chunks into one knowledge base's store, and their catalog entries."""

    def __init__(self, kb: KnowledgeBase, db: Database, *, worker: IngestWorker | None = None):
        self.kb = kb
        self.db = db
        self.worker = worker
        """Embeds in a child process when set (the service; issue 20)."""
        cfg = kb.settings.retrieval
        self.chunker = Chunker(cfg.chunk_size, cfg.chunk_overlap, cfg.whole_section_size)

    @property
    def lock(self) -> threading.RLock:
        """The knowledge base's write lock (reentrant): hold it to make several writes one."""
        return self.kb.write_lock

    # -- documents ---------------------------------------------------------------------------

    def index(
        self,
        sf: SourceFile,
        *,
        source: str,
        content_hash: str,
        size: int,
        parse: Callable[[], ParsedDocument],
        report: IngestReport,
        created_by: str,
    ) -> FileResult:
        """Bring one document of ``source`` to ``content_hash``: unchanged (maybe regrouped),
        or parsed (outside the lock), chunked, embedded and written as a new version. A
        document that fails keeps its previous version searchable and is marked as failed."""
        with self.lock:
            with self.db.session() as s:
                rec = s.get(DocumentRecord, sf.document_id)
                previous = (rec.hash, tuple(rec.groups), rec.status) if rec else None
            if previous and previous[0] == content_hash and previous[2] == "indexed":
                if previous[1] != sf.groups:
                    self.kb.store.set_groups(sf.document_id, sf.groups)
                    with self.db.session() as s:
                        rec = s.get(DocumentRecord, sf.document_id)
                        assert rec is not None
                        rec.groups = list(sf.groups)
                    return FileResult(sf.relpath, sf.document_id, "regrouped")
                return FileResult(sf.relpath, sf.document_id, "unchanged")
        try:
            t0 = time.perf_counter()
            parsed = parse()
            report.timed("parse", time.perf_counter() - t0)
            with self.lock:
                chunks = self._write_version(sf, parsed, content_hash, report)
                flags = instruction_flags(parsed)
                self._record_version(
                    sf, source, parsed, chunks, content_hash, size, flags, created_by
                )
        except KBError as exc:
            self.record_failure(sf, source, size, exc.detail)
            return FileResult(sf.relpath, sf.document_id, "failed", error=exc.detail)
        outcome: Outcome = "updated" if previous and previous[0] else "added"
        return FileResult(
            sf.relpath,
            sf.document_id,
            outcome,
            chunks=len(chunks),
            flags=flags,
            warnings=list(parsed.warnings),
        )

    def index_record(
        self, record: RecordDoc, *, source: str, created_by: str, report: IngestReport
    ) -> FileResult:
        """Index a document given as text (:class:`RecordDoc`) as a document of ``source``."""
        parsed = _record_to_parsed(record)
        sf = SourceFile(
            path=Path(record.document_id),
            relpath=record.document_id,
            document_id=record.document_id,
            groups=record.groups,
            title=record.title,
        )
        content = f"{record.kind}\n{record.title}\n{record.text}".encode()
        return self.index(
            sf,
            source=source,
            content_hash=file_hash(content),
            size=len(record.text.encode()),
            parse=functools.partial(_identity, parsed),
            report=report,
            created_by=created_by,
        )

    def delete_document(self, document_id: str) -> None:
        """Remove a document's points and its catalog entry."""
        with self.lock:
            self.kb.store.delete_document(document_id)
            self.kb.forget_language_direction()
            with self.db.session() as s:
                rec = s.get(DocumentRecord, document_id)
                if rec is not None:
                    s.delete(rec)

    def delete_points(self, document_id: str, *, keep_hash: str | None = None) -> None:
        """Remove a document's points (those of other versions than ``keep_hash``), leaving
        its catalog entry: a repair after a killed run (:mod:`ingest.recovery`)."""
        with self.lock:
            self.kb.store.delete_document(document_id, keep_hash=keep_hash)

    def set_groups(self, document_id: str, groups: Sequence[str]) -> None:
        """Change a document's access groups in the index and the catalog, without re-embedding."""
        clean = tuple(sorted(set(groups)))
        with self.lock:
            self.kb.store.set_groups(document_id, clean)
            with self.db.session() as s:
                rec = s.get(DocumentRecord, document_id)
                if rec is not None:
                    rec.groups = list(clean)

    def refresh_terms(self) -> int:
        """Re-encode the BM25 vectors of every document whose points an older term analyzer
        encoded (``retrieval.sparse.ANALYZER_VERSION``), whatever its source (folders, uploads,
        staff answers): its questions' terms would no longer match them. Nothing is parsed
        again; chunks, versions and dense vectors stay as they are (read back from the
        embedding cache, embedded again only where it lacks them); each document's points are
        rewritten in place, under the lock, so it stays searchable throughout and a new
        version written meanwhile is not overwritten by the old one.

        :returns: how many documents were re-encoded.
        """
        ids = stale_analyzer(self.db)
        scratch = IngestReport(run_id="refresh-terms", source="")
        for doc_id in ids:
            with self.lock:
                chunks = [p.chunk for p in self.kb.store.document_chunks(doc_id)]
                if chunks:
                    self.kb.store.upsert(self.embed(chunks, scratch))
                with self.db.session() as s:
                    rec = s.get(DocumentRecord, doc_id)
                    if rec is not None:
                        rec.analyzer = ANALYZER_VERSION
        return len(ids)

    def optimize(self, report: IngestReport) -> None:
        """Build the store's search indexes (the CLI; a serving process never: Edge's
        optimize freezes the process)."""
        t0 = time.perf_counter()
        with self.lock:
            self.kb.store.optimize()
        report.timed("optimize", time.perf_counter() - t0)

    def record_failure(self, sf: SourceFile, source: str, size: int, error: str) -> None:
        """A file that could not be indexed: catalogued as failed, or its indexed version
        marked stale (it keeps serving); a first version half written is removed."""
        with self.lock, self.db.session() as s:
            rec = s.get(DocumentRecord, sf.document_id)
            if rec is None:
                rec = DocumentRecord(
                    id=sf.document_id,
                    source=source,
                    source_path=sf.relpath,
                    stored_path=str(sf.path),
                    title=sf.title or sf.path.name,
                    suffix=sf.path.suffix.lower(),
                    hash="",
                    version=0,
                    groups=list(sf.groups),
                    size_bytes=size,
                    status="failed",
                )
                s.add(rec)
            elif rec.status == "indexed":
                rec.status = "stale"
            elif rec.status == "pending":
                # A first version failed while being written: none of it may be found.
                self.kb.store.delete_document(sf.document_id)
                rec.status = "failed"
            rec.last_error = error

    # -- vectors -----------------------------------------------------------------------------

    def embed(self, chunks: Sequence[Chunk], report: IngestReport) -> list[EmbeddedChunk]:
        """Dense (cached by content) and sparse vectors of ``chunks``; nothing is written."""
        fields = {"": [c.embed_text for c in chunks]}
        if self.kb.settings.embedder.title_vectors:
            fields["title"] = [c.title_text for c in chunks]
        dense: dict[str, list[list[float]]] = {}
        batch = self.kb.settings.embedder.batch_size
        t0 = time.perf_counter()
        for embedder in self._passage_embedders():
            for field_name, texts in fields.items():
                vectors, misses = embed_cached(embedder, texts, self.kb.cache, batch_size=batch)
                name = title_vector(embedder.name) if field_name else embedder.name
                dense[name] = vectors
                report.embedded += misses
            if "title" in fields:
                name = title_vector(embedder.name)
                dense[name] = break_title_ties(dense[name], dense[embedder.name])
        t1 = time.perf_counter()
        report.timed("embed", t1 - t0)
        out = [
            EmbeddedChunk(
                chunk=c,
                dense={name: vecs[i] for name, vecs in dense.items()},
                sparse=self.kb.sparse.encode_document(c.embed_text),
            )
            for i, c in enumerate(chunks)
        ]
        report.timed("sparse", time.perf_counter() - t1)
        return out

    def _passage_embedders(self) -> list[Embedder]:
        if self.worker is None:
            return list(self.kb.embedders)
        from kb.ingest.worker import RemoteEmbedder

        return [RemoteEmbedder(e.name, e.dim, self.worker) for e in self.kb.embedders]

    # -- internals ---------------------------------------------------------------------------

    def _write_version(
        self, sf: SourceFile, parsed: ParsedDocument, content_hash: str, report: IngestReport
    ) -> list[Chunk]:
        with self.db.session() as s:
            rec = s.get(DocumentRecord, sf.document_id)
            version = (rec.version if rec else 0) + 1
        if sf.title:
            parsed = dataclasses.replace(parsed, title=sf.title)
        t0 = time.perf_counter()
        chunks = self.chunker.chunk(
            parsed,
            document_id=sf.document_id,
            source_path=sf.relpath,
            groups=sf.groups,
            version=version,
            doc_hash=content_hash,
        )
        report.timed("chunk", time.perf_counter() - t0)
        if not chunks:
            raise ParseError("no text to index")
        embedded = self.embed(chunks, report)
        # The same content cut again (kb ingest --reindex): its confirmed pairs follow it.
        same = rec is not None and rec.hash == content_hash
        old = [p.chunk for p in self.kb.store.document_chunks(sf.document_id)] if same else []
        if rec is None:
            # Catalogued before any point is written, so a run killed mid-write leaves a
            # ``pending`` entry the next run can clean up, never points nobody knows of.
            with self.db.session() as s:
                s.add(
                    DocumentRecord(
                        id=sf.document_id,
                        source=report.source,
                        source_path=sf.relpath,
                        stored_path=str(sf.path),
                        title=parsed.title,
                        suffix=sf.path.suffix.lower(),
                        hash="",
                        version=0,
                        groups=list(sf.groups),
                        status="pending",
                    )
                )
        t0 = time.perf_counter()
        self.kb.store.upsert(embedded)
        # New points are in; only now remove the previous version's (and, when the same content
        # was cut into fewer chunks, the old cut's points the new ones did not overwrite).
        self.kb.store.delete_document(
            sf.document_id, keep_hash=content_hash, keep_chunks=len(chunks)
        )
        follow_recut(self.db, old, chunks)
        report.timed("upsert", time.perf_counter() - t0)
        return chunks

    def _record_version(
        self,
        sf: SourceFile,
        source: str,
        parsed: ParsedDocument,
        chunks: list[Chunk],
        content_hash: str,
        size: int,
        flags: list[dict[str, str]],
        created_by: str,
    ) -> None:
        with self.db.session() as s:
            rec = s.get(DocumentRecord, sf.document_id)
            if rec is None:
                rec = DocumentRecord(id=sf.document_id, source=source, version=0)
                s.add(rec)
            rec.source_path = sf.relpath
            rec.stored_path = str(sf.path)
            rec.title = sf.title or parsed.title
            rec.suffix = sf.path.suffix.lower()
            rec.lang = parsed.lang
            rec.hash = content_hash
            rec.version = chunks[0].version if chunks else (rec.version or 0) + 1
            rec.groups = list(sf.groups)
            rec.chunk_count = len(chunks)
            rec.size_bytes = size
            rec.status = "indexed"
            rec.analyzer = ANALYZER_VERSION
            rec.last_ingested = utcnow()
            rec.last_error = None
            rec.flags = flags
            s.add(
                DocumentVersion(
                    document_id=sf.document_id,
                    version=rec.version,
                    hash=content_hash,
                    chunk_count=len(chunks),
                    created_by=created_by,
                )
            )


def instruction_flags(parsed: ParsedDocument) -> list[dict[str, str]]:
    """Sentences of a document that read like instructions to a language model, with where
    they are: ``[{kind, location, excerpt}]``. The document is indexed all the same; prompts
    neutralise these sentences (``retrieval/generate.py``)."""
    flags: list[dict[str, str]] = []
    for section in parsed.sections:
        text = f"{section.question}\n{section.text}" if section.question else section.text
        for match in find_instructions(text):
            flags.append(
                {
                    "kind": match.kind,
                    "location": section.location.label() or parsed.title,
                    "excerpt": excerpt(text, match),
                }
            )
    return flags


def _identity(parsed: ParsedDocument) -> ParsedDocument:
    return parsed


def _record_to_parsed(rec: RecordDoc) -> ParsedDocument:
    if rec.kind == "qa":
        section = Section(text=rec.text, kind="qa", question=rec.title)
    else:
        section = Section(text=rec.text, location=Location(heading_path=(rec.title,)))
    return ParsedDocument(
        title=rec.title, sections=[section], lang=detect_lang(rec.title + rec.text), text=rec.text
    )
