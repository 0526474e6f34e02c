"""The ingestion worker process (issue 20): parsing and passage embedding away from answers.

While documents were ingested inside the serving process, questions waited for the one
embedder (shared behind one lock) and for the parsers' hold on the GIL: 20-28 s stalls. The
service now hands both jobs to one child process with its own model instance, embedding with
``ingest.threads`` threads at a lower CPU priority, so the serving process keeps a core and its
own query embedder. Requests go over a pipe, one at a time (the runner's write lock orders
them already): ``parse`` (a file to a :class:`ParsedDocument`) and ``embed`` (passages to
vectors). What stays in the service is short: chunking, BM25 terms, and the writes to the
store and the catalog, which only the process that owns the embedded store can do.

A parse that runs past ``ingest.max_seconds`` is ended by killing the child (no thread can be
stopped half-way through a C parser), and a child that dies on a hostile file (out of memory)
costs that file only: both are per-file :class:`ParseError` s, and the next request starts a
fresh child. The child is started on first use, so a service that never ingests never pays
for it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from kb.retrieval.errors import IngestError, KBError, ParseError
from kb.retrieval.models import ParsedDocument
from kb.retrieval.offline import stay_offline
from kb.retrieval.settings import EmbedderSettings, IngestSettings

log = logging.getLogger(__name__)

STARTUP_S = 300
"""Seconds the child may take to import the parsers (a busy machine) before it is given up."""
NICENESS = 10
"""How much lower the child's CPU priority is than the service's."""


class IngestWorker:
    """A child process that parses files and embeds passages for the ingestion pipeline."""

    def __init__(
        self, embedder: EmbedderSettings, limits: IngestSettings, *, threads: int | None = None
    ) -> None:
        self.threads = threads or limits.threads
        self.limits = limits
        self._embedder = embedder.model_copy(
            update={"threads": self.threads, "query_threads": self.threads}
        )
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send: Connection | None = None
        self.restarts = 0
        """Children killed (time limit) or lost (crash) and replaced, for reports and tests."""

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def parse(self, path: Path, *, max_bytes: int) -> ParsedDocument:
        """:func:`ingest.parse.parse_file` in the child, within ``limits.max_seconds``.

        :raises ParseError: the parser's own errors; past the time limit or when the child dies
            (``parse time limit: ...`` names ``KB_INGEST__MAX_SECONDS``).
        """
        limit = self.limits.max_seconds
        try:
            result = self._call("parse", (str(path), max_bytes), timeout=limit)
        except TimeoutError:
            raise ParseError(
                f"parse time limit: still parsing after {limit:g} s, stopped (raise it with "
                "KB_INGEST__MAX_SECONDS)"
            ) from None
        except _ChildDied as exc:
            raise ParseError(
                f"the ingestion worker died while parsing this file ({exc}); the file is "
                "refused, the run goes on"
            ) from None
        assert isinstance(result, ParsedDocument)
        return result

    def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """Passage vectors of ``texts`` by the configured model ``model``, in the child.

        :raises IngestError: the child failed or died.
        """
        try:
            result = self._call("embed", (model, list(texts)), timeout=None)
        except _ChildDied as exc:
            raise IngestError(f"the ingestion worker died while embedding ({exc})") from None
        assert isinstance(result, list)
        return result

    def peak_rss_mb(self) -> float:
        """The child's peak resident memory so far, in MiB (benchmarks)."""
        value = self._call("rss", (), timeout=30)
        assert isinstance(value, int)
        return value / 1024

    def close(self) -> None:
        """Stop the child (it is started again on the next request)."""
        with self._lock:
            self._stop(kill=False)

    # -- internals -----------------------------------------------------------------------

    def _call(self, op: str, args: tuple[Any, ...], *, timeout: float | None) -> object:
        with self._lock:
            conn = self._ensure()
            try:
                assert self._send is not None
                self._send.send((op, args))
                answered = conn.poll(timeout)
                if answered:
                    status, value = conn.recv()
            except (EOFError, OSError):
                code = self._process.poll() if self._process is not None else None
                self._stop(kill=True)
                raise _ChildDied(f"exit code {code}") from None
            if not answered:
                log.warning("ingestion worker: %s over %s s, killing it", op, timeout)
                self._stop(kill=True)
                raise TimeoutError(op)
        if status == "ok":
            return value
        kind, detail, code = value
        if kind == "ParseError":
            raise ParseError(detail)
        if kind == "KBError":
            raise KBError(detail, code=code)
        raise IngestError(f"ingestion worker: {detail}")

    def _ensure(self) -> Connection:
        if self._process is not None and self._process.poll() is None and self._conn is not None:
            return self._conn
        if self._process is not None:
            self._stop(kill=True)
        # A fresh interpreter (not a fork: the service has threads, the store's and OpenMP's,
        # that a forked child would inherit in whatever state they were), talking over two
        # pipes of its own (libraries that print to stdout cannot garble the exchange).
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # The folder holding this package's top level (a checkout, or site-packages), so that
        # the child imports the same code without an install.
        top = sys.modules[__name__.split(".")[0]].__file__ or __file__
        root = str(Path(top).resolve().parent.parent)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        }
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            # Before any numeric library loads in the child: OpenMP and BLAS size their pools once.
            env[var] = str(self.threads)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "kb.ingest.worker", str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                env=env,
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        send = Connection(to_child_w, readable=False)
        recv = Connection(from_child_r, writable=False)
        send.send((self._embedder.model_dump(mode="json"), self.limits.model_dump(mode="json")))
        self._process, self._conn, self._send = process, recv, send
        # The child imports the parsers before it says it is ready, so that a file's time
        # limit counts its parse, not the imports.
        if not recv.poll(STARTUP_S) or recv.recv() != "ready":
            self._stop(kill=True)
            raise _ChildDied(f"not ready within {STARTUP_S} s")
        log.info("ingestion worker started (pid %s, %d thread(s))", process.pid, self.threads)
        return recv

    def _stop(self, *, kill: bool) -> None:
        process, conn, send = self._process, self._conn, self._send
        self._process = self._conn = self._send = None
        if process is None:
            return
        if kill:
            self.restarts += 1
            process.kill()
        elif send is not None:
            try:
                send.send(("stop", ()))
            except OSError:
                process.kill()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        for c in (conn, send):
            if c is not None:
                c.close()


class _ChildDied(Exception):
    """The child exited (or was killed) before answering."""


def _serve(recv: Connection, send: Connection) -> None:
    """The child's loop: answer requests until ``stop`` or the pipe closes."""
    stay_offline()
    try:
        os.nice(NICENESS)
    except OSError:  # not permitted: run at the same priority
        pass
    from kb.retrieval.embedders import build_embedders

    embedder_json, limits_json = recv.recv()
    limits = IngestSettings.model_validate(limits_json)
    settings = EmbedderSettings.model_validate(embedder_json)
    embedders = {e.name: e for e in build_embedders(settings)}
    _preload()
    send.send("ready")
    while True:
        try:
            op, args = recv.recv()
        except (EOFError, OSError):
            return
        if op == "stop":
            return
        try:
            send.send(("ok", _handle(op, args, embedders, limits)))
        except KBError as exc:
            kind = "ParseError" if isinstance(exc, ParseError) else "KBError"
            send.send(("error", (kind, exc.detail, exc.code)))
        except Exception as exc:  # reported to the parent; the child goes on
            send.send(("error", ("Exception", f"{type(exc).__name__}: {exc}", "INGEST_ERROR")))


def _preload() -> None:
    """Import every parser now (seconds), not inside the first file's time limit."""
    import kb.ingest.parse  # noqa: F401
    from kb.ingest._formats import markup, office, pdf, sheets  # noqa: F401
    from kb.ingest._formats.unstructured_setup import ensure_unstructured

    ensure_unstructured()
    import unstructured.partition.docx
    import unstructured.partition.html
    import unstructured.partition.md  # noqa: F401


def _handle(op: str, args: Any, embedders: dict[str, Any], limits: IngestSettings) -> object:
    if op == "parse":
        from kb.ingest.parse import parse_file

        path, max_bytes = args
        return parse_file(Path(path), max_bytes=max_bytes, limits=limits)
    if op == "embed":
        model, texts = args
        if model not in embedders:
            raise IngestError(f"the ingestion worker has no model {model}")
        return embedders[model].embed_documents(texts)
    if op == "rss":
        # VmHWM: this interpreter's own peak (ru_maxrss would include the parent's resident
        # size at the fork that preceded the exec).
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    raise IngestError(f"unknown request {op}")


class RemoteEmbedder:
    """A configured model's passage side, run in the worker (the :class:`Embedder` protocol's
    ``embed_documents``; questions are never embedded here)."""

    def __init__(self, name: str, dim: int, worker: IngestWorker) -> None:
        self.name = name
        self.dim = dim
        self._worker = worker

    def warm_up(self) -> None:
        """Nothing: the child loads the model on its first request."""

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Passage vectors, computed in the worker."""
        return self._worker.embed(self.name, texts) if texts else []

    def embed_query(self, text: str) -> list[float]:
        """Not offered: questions are embedded by the service's own model."""
        raise NotImplementedError("questions are embedded in the serving process")


if __name__ == "__main__":  # the child: python -m kb.ingest.worker READ_FD WRITE_FD
    from kb.retrieval.logs import configure_logging, settings_from_env

    configure_logging(settings_from_env())  # the service's KB_LOG__* (inherited environment)
    _serve(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )
