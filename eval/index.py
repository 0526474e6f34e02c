"""Evaluation indexes: the settings an evaluation runs with, the cached index folder each
dataset gets (fingerprinted by what shapes the index), and the seam (:class:`Backend`) through
which the real pipeline, or a test's fakes, open a knowledge base and index a dataset.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.eval.datasets import CorpusDoc, EvalDataset, normalize_relpath
from kb.eval.variants import apply_overrides
from kb.ingest.parse import PARSERS_VERSION
from kb.retrieval.settings import Settings
from kb.retrieval.sparse import ANALYZER_VERSION

INDEX_VERSION = 6
"""Bump to invalidate every cached evaluation index (e.g. after a chunking change; 2: chunks
keep the spaces and line breaks between their sentences; 3: title vectors without ties;
4: BM25 term weights without ties; 5: sentences end after "setup." and not after "excl.";
6: "Yes." is one sentence with the statement after it).
A new term analyzer needs no bump: its ``ANALYZER_VERSION`` is part of the fingerprint."""
INDEX_MARKER = "eval-index.json"
INDEX_SETTINGS = (
    "embedder.models",
    "embedder.st_model_path",
    "retrieval.chunk_size",
    "retrieval.chunk_overlap",
    "retrieval.whole_section_size",
    "qdrant.collection",
    "qdrant.local_mode",
)
"""Settings that change what is indexed; query-time settings do not re-index."""
_SECRET_KEY = re.compile(r"(api_key|password|secret|token)", re.IGNORECASE)


def eval_settings(settings: Settings, data_dir: Path, *, cache: Path) -> Settings:
    """The settings the evaluation asks with: its own embedded store and SQLite in
    ``data_dir``, the embedding cache shared across runs in ``cache``, the confidence gate open
    (threshold 0), the question memory refitted before each question. Everything that decides
    the answer is the configured one: the retrieval depth the metrics need is asked per
    question (``KnowledgeBase.ask(depth=...)``)."""
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "qdrant.url": None,
        "qdrant.api_key": None,
        "qdrant.path": None,
        "embedding_cache": cache / "embeddings.sqlite3",
        "public_base_url": "",
        "retrieval.confidence_threshold": 0.0,
        # The replay's figures must not depend on when a background refit ends.
        "support.memory_refit": "inline",
    }
    return apply_overrides(settings, overrides)


def index_fingerprint(dataset: EvalDataset, settings: Settings, corpus_hash: str) -> str:
    """Hex digest of what decides the index: corpus content, dataset kind, index settings,
    the term analyzer (and the parsers, for folders)."""
    dump = settings.model_dump(mode="json")
    relevant = {key: _dotted(dump, key) for key in INDEX_SETTINGS}
    key: dict[str, Any] = {
        "v": INDEX_VERSION,
        "kind": dataset.kind,
        "corpus": corpus_hash,
        "settings": relevant,
        "analyzer": ANALYZER_VERSION,
    }
    if dataset.kind == "folder":  # files go through the parsers; records do not
        key["parsers"] = PARSERS_VERSION
    blob = json.dumps(key, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def data_dir_for(cache: Path, dataset: EvalDataset, settings: Settings, corpus_hash: str) -> Path:
    """``<cache>/<dataset name>-<fingerprint[:16]>``."""
    return cache / f"{dataset.name}-{index_fingerprint(dataset, settings, corpus_hash)[:16]}"


def public_settings(settings: Settings) -> dict[str, Any]:
    """JSON dump of ``settings`` with secrets masked (keys named like a secret, URL passwords)."""
    masked: dict[str, Any] = _mask(settings.model_dump(mode="json"))
    return masked


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str) and value and _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, str):
        return re.sub(r"(://[^:/@\s]+):[^@\s]+@", r"\1:***@", value)
    return value


def _dotted(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


# --- the pipeline, behind a seam ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backend:
    """How to open a knowledge base, build its ingestor and turn a corpus line into a record.
    :meth:`default` uses the real ones; tests pass fakes."""

    open_kb: Callable[[Settings], Any]
    ingestor: Callable[[Any], Any]
    record: Callable[[CorpusDoc], Any]

    @classmethod
    def default(cls) -> Backend:
        """``KnowledgeBase.open``, ``Ingestor(kb)`` and ``RecordDoc`` (imported when called)."""
        from kb.ingest.pipeline import RecordDoc
        from kb.retrieval.service import KnowledgeBase

        def record(doc: CorpusDoc) -> Any:
            return RecordDoc(document_id=doc.id, title=doc.title, text=doc.text, kind=doc.kind)

        return cls(open_kb=KnowledgeBase.open, ingestor=_PipelineIngestor, record=record)


class _PipelineIngestor:
    """``ingest.pipeline.Ingestor`` whose catalog connection is released after each call."""

    def __init__(self, kb: Any) -> None:
        from kb.ingest.pipeline import Ingestor

        self._ingestor = Ingestor(kb)

    def index_records(self, records: Any, *, source: str) -> Any:
        try:
            return self._ingestor.index_records(records, source=source)
        finally:
            self._ingestor.db.dispose()

    def sync_folder(self, path: Path) -> Any:
        try:
            return self._ingestor.sync_folder(path)
        finally:
            self._ingestor.db.dispose()


class DocKeys:
    """Maps a passage or citation to the key gold ids use: the document id for record sets,
    the path relative to the corpus folder for folder sets."""

    def __init__(self, dataset: EvalDataset) -> None:
        self.dataset = dataset
        self._root = dataset.corpus.resolve() if dataset.kind == "folder" else None
        self._ids: dict[str, str] | None = None

    def key(self, document_id: str, source_path: str | None) -> str:
        """The gold-comparable key of a document."""
        if self._root is None:
            return document_id
        rel = self._id_map().get(document_id)
        if rel is not None:
            return rel
        return self._relpath(source_path or "") or document_id

    def _relpath(self, source_path: str) -> str:
        assert self._root is not None
        path = Path(source_path)
        if path.is_absolute():
            try:
                return path.resolve().relative_to(self._root).as_posix()
            except ValueError:
                return normalize_relpath(source_path)
        rel = normalize_relpath(source_path)
        prefix = self._root.name + "/"
        return rel[len(prefix) :] if rel.startswith(prefix) else rel

    def _id_map(self) -> dict[str, str]:
        if self._ids is None:
            try:
                from kb.ingest.sources import walk_source

                self._ids = {f.document_id: f.relpath for f in walk_source(self.dataset.corpus)}
            except Exception:  # the source-path fallback still works
                self._ids = {}
        return self._ids


def ensure_index(
    kb: Any, dataset: EvalDataset, data_dir: Path, backend: Backend
) -> tuple[float, bool, dict[str, Any]]:
    """Index ``dataset`` into ``kb`` unless ``data_dir`` holds a finished index.

    :returns: (indexing seconds, True when the index was reused, the ingest report's counts);
        a reused index gives the seconds and counts recorded when it was built.
    """
    marker = data_dir / INDEX_MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        return float(recorded.get("index_seconds", 0.0)), True, dict(recorded.get("report") or {})
    t0 = time.perf_counter()
    ingestor = backend.ingestor(kb)
    if dataset.kind == "records":
        records = (backend.record(doc) for doc in dataset.records())
        result = ingestor.index_records(records, source=f"eval:{dataset.name}")
    else:
        result = ingestor.sync_folder(dataset.corpus)
    seconds = time.perf_counter() - t0
    summary = index_summary(result)
    marker.write_text(
        json.dumps(
            {"dataset": dataset.name, "index_seconds": seconds, "report": summary},
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    return seconds, False, summary


def index_summary(result: Any) -> dict[str, Any]:
    """Counts from an ingest report (``to_dict()`` without the per-file list) and up to five
    failed files with their errors."""
    to_dict = getattr(result, "to_dict", None)
    if not callable(to_dict):
        return {}
    data = dict(to_dict())
    files = data.pop("files", None) or []
    failed = [f for f in files if isinstance(f, dict) and f.get("outcome") == "failed"]
    data["failed_examples"] = [{"path": f.get("path"), "error": f.get("error")} for f in failed[:5]]
    return data
