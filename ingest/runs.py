"""Ingestion runs: a run's report, its record in the ``ingest_runs`` table, and who owns it.

A run is recorded ``running`` when it starts, its progress at most once a second, and
``finished`` or ``failed`` with its report when it ends. Its owner (host and pid) lets a later
run tell a live run from one whose process was killed (:mod:`ingest.recovery`).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from kb.db.engine import Database
from kb.db.models import IngestRun, utcnow
from kb.retrieval.telemetry import record_ingest_run

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
    analyzer before the run (:meth:`ingest.indexing.Indexer.refresh_terms`)."""

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


class RunLog:
    """The ``ingest_runs`` records of one catalog database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._progress_at = 0.0

    def start(self, report: IngestReport, created_by: str) -> None:
        """Record the run as ``running`` (a queued run's record is reused)."""
        with self.db.session() as s:
            run = s.get(IngestRun, report.run_id)
            if run is None:
                run = IngestRun(id=report.run_id, source=report.source)
                s.add(run)
            run.status = "running"
            run.started_at = utcnow()
            run.report = {**report.to_dict(), "owner": run_owner(), "created_by": created_by}

    def progress(self, report: IngestReport, done: int, total: int, current: str) -> None:
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

    def abort(self, report: IngestReport, error: str) -> None:
        """Record the run as ``failed`` with ``error``."""
        with self.db.session() as s:
            run = s.get(IngestRun, report.run_id)
            if run is None:
                run = IngestRun(id=report.run_id, source=report.source)
                s.add(run)
            _fill_run(run, report)
            run.status = "failed"
            run.report = {**(run.report or {}), "error": error}
        record_ingest_run("failed", report.to_dict())

    def finish(self, report: IngestReport) -> None:
        """Record the run as ``finished`` with its report."""
        with self.db.session() as s:
            run = s.get(IngestRun, report.run_id)
            if run is None:
                return
            _fill_run(run, report)
            run.status = "finished"
        record_ingest_run("finished", report.to_dict())


def _fill_run(run: IngestRun, report: IngestReport) -> None:
    run.finished_at = utcnow()
    run.added = report.count("added")
    run.updated = report.count("updated")
    run.unchanged = report.count("unchanged")
    run.deleted = report.count("deleted")
    run.failed = report.count("failed")
    run.report = {**(run.report or {}), **report.to_dict(), "owner": run_owner()}


def run_owner() -> dict[str, object]:
    """Which process runs an ingestion: lets a later run tell a live run from a killed one."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def owner_alive(report: dict[str, object] | None) -> bool:
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
