"""Background ingestion inside the service process.

In the embedded mode the service owns the store, so folder syncs asked for through the API
(``POST /api/ingest``) and handed over by ``kb ingest`` run here: one worker thread, one run at
a time, in the order asked. Runs, uploads, deletes and group changes hold
:attr:`IngestRunner.lock`, so one of them runs at a time; each of their writes to the store
goes through :mod:`ingest.indexing` and holds the knowledge base's write lock, which staff
answers take too (issue 26). Searches take no lock.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from kb.db.models import IngestRun
from kb.ingest.pipeline import Ingestor
from kb.ingest.runs import IngestReport, run_owner
from kb.ingest.uploads import FileStore, remove_orphans
from kb.retrieval.errors import IngestError

log = logging.getLogger(__name__)


class IngestRunner:
    """Queues folder syncs and runs them one by one on a worker thread."""

    def __init__(self, ingestor: Ingestor, *, roots: list[Path]) -> None:
        self.ingestor = ingestor
        self.roots = [r.expanduser().resolve() for r in roots]
        self.lock = threading.Lock()
        """One run at a time (folder syncs, uploads, deletes, group changes)."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-ingest")
        self._futures: dict[str, Future[IngestReport | None]] = {}

    def recover(self, files: FileStore | None = None) -> list[str]:
        """Repair what runs killed with an earlier process left behind (call at startup),
        and remove the upload files in ``files`` that a crash left unindexed (issue 20)."""
        with self.lock:
            repaired = self.ingestor.recover()
            if files is not None:
                remove_orphans(self.ingestor, files)
            return repaired

    def refresh_terms(self) -> Future[int]:
        """Queue :meth:`Ingestor.refresh_terms` (call at startup, after an upgrade that changed
        the term analyzer): the service answers meanwhile, from the points not yet rewritten."""
        return self._pool.submit(self._refresh_terms)

    def submit(
        self, path: Path, *, created_by: str, reindex: bool = False, anywhere: bool = False
    ) -> str:
        """Queue a sync of the server-side ``path`` (``reindex``: every file parsed and indexed
        again, see :meth:`Ingestor.mark_for_reindex`); :returns: the run id to follow.

        :raises IngestError: if the path does not exist or lies outside the allowed roots.
        """
        resolved = self.check_path(path, anywhere=anywhere)
        run_id = str(uuid.uuid4())
        with self.ingestor.db.session() as s:
            s.add(
                IngestRun(
                    id=run_id,
                    source=str(resolved),
                    status="queued",
                    report={"owner": run_owner(), "created_by": created_by, "reindex": reindex},
                )
            )
        self._futures[run_id] = self._pool.submit(self._run, resolved, run_id, created_by, reindex)
        return run_id

    def check_path(self, path: Path, *, anywhere: bool = False) -> Path:
        """``path`` resolved, when this service may sync it: below one of the allowed roots
        (``KB_INGEST_ROOTS``, by default the knowledge-base folder ``KB_DOCS_DIR``) once every
        symbolic link is followed, so a link out of a root is refused like the path it
        points to (issue 20). ``anywhere``: ``kb ingest`` handing its run over, whose user
        holds the data folder's secret and may read the server's files anyway.

        :raises IngestError: if the path is relative, does not exist or lies outside the
            allowed roots (``FORBIDDEN``, naming the setting).
        """
        if not path.is_absolute():
            raise IngestError(f"the path must be absolute on the server: {path}")
        resolved = path.resolve()
        if not anywhere and not any(resolved.is_relative_to(r) for r in self.roots):
            via_link = f" (a link to {resolved})" if resolved != Path(os.path.abspath(path)) else ""
            raise IngestError(
                f"{path}{via_link} is outside the folders this service may ingest: "
                f"{', '.join(map(str, self.roots))} (KB_INGEST_ROOTS, default KB_DOCS_DIR)",
                code="FORBIDDEN",
            )
        if not resolved.exists():
            raise IngestError(f"no such file or folder on the server: {path}")
        return resolved

    def wait(self, run_id: str, timeout: float | None = None) -> IngestReport | None:
        """Block until a run of this process ends (tests, shutdown); ``None`` if it failed."""
        future = self._futures.get(run_id)
        return future.result(timeout) if future else None

    def shutdown(self) -> None:
        """Finish the run in progress, drop the queued ones (they stay ``queued`` and are
        marked ``interrupted`` by the next start), stop the worker process."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self.ingestor.worker is not None:
            self.ingestor.worker.close()

    def _refresh_terms(self) -> int:
        try:
            with self.lock:
                n = self.ingestor.refresh_terms()
        except Exception:  # the next start or `kb ingest` tries again; serving goes on
            log.exception("re-encoding the BM25 terms failed")
            return 0
        if n:
            log.info("re-encoded the BM25 terms of %d documents for the current analyzer", n)
        return n

    def _run(self, path: Path, run_id: str, created_by: str, reindex: bool) -> IngestReport | None:
        try:
            with self.lock:
                # No optimize: Edge's optimize holds the GIL and would freeze every request.
                return self.ingestor.sync_folder(
                    path, created_by=created_by, run_id=run_id, optimize=False, reindex=reindex
                )
        except Exception:  # recorded on the run by sync_folder; the worker must go on
            log.exception("ingestion run %s failed", run_id)
            return None


def run_json(run: IngestRun, *, files: bool) -> dict[str, object]:
    """A run as the API and ``kb runs`` show it; ``files`` adds the per-file outcomes."""
    report = run.report or {}
    data: dict[str, object] = {
        "id": run.id,
        "source": run.source,
        "status": run.status,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "added": run.added,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "deleted": run.deleted,
        "failed": run.failed,
        "regrouped": report.get("regrouped", 0),
        "seconds": report.get("seconds"),
        "embedded_chunks": report.get("embedded_chunks", 0),
        "created_by": report.get("created_by"),
        "error": report.get("error"),
        # Files done of the run's total, and the one in hand (issue 20).
        "progress": report.get("progress"),
    }
    if files:
        data["files"] = report.get("files", [])
    return data
