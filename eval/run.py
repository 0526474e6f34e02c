"""``kb eval``: index each dataset once, ask every question through the ask path, report.

For each dataset and each configuration (the default, then any ``--variants``):

1. Pick the data folder ``<cache>/<dataset>-<fingerprint>``: the fingerprint hashes the corpus
   content and the settings that shape the index, so a rerun reuses a finished index (marked by
   ``eval-index.json``) and a half-built one is rebuilt from scratch.
2. Open a :class:`~retrieval.service.KnowledgeBase` on it and index: ``corpus.jsonl`` records via
   ``Ingestor.index_records``, a cases file's corpus folder via ``Ingestor.sync_folder``.
3. Ask every question with ``KnowledgeBase.ask`` (the ``/api/ask`` path) under the asker's
   groups, with the confidence gate open (threshold 0): every question the pipeline *could*
   answer comes back with its citations, so the configured threshold and the whole sweep are
   applied afterwards, exactly (the answer text does not depend on the threshold). An
   exception is recorded against the question and the run goes on.
4. Score (:mod:`eval.metrics`), check faithfulness of the answers given, and write the report,
   the per-question log and the history (:mod:`eval.report`, :mod:`eval.history`).

Evaluation never touches the configured store: it forces an embedded store and SQLite inside
its own data folder. Models, store and ingestion come from a :class:`Backend`, which tests
replace with fakes.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eval.datasets import CorpusDoc, DatasetError, EvalDataset, load_dataset, normalize_relpath
from eval.history import (
    append_history,
    compare,
    format_comparison,
    git_commit,
    load_history,
    new_run_dir,
    previous_run,
    utc_now,
)
from eval.loop import (
    LoopOptions,
    Simulation,
    document_keys,
    learning_curve,
    loop_database,
    memory_of,
    split_history,
)
from eval.metrics import (
    DEFAULT_WRONG_ANSWER_TARGET,
    Outcome,
    Status,
    answered_at,
    answering_metrics,
    retrieval_metrics,
    summarize,
)
from eval.report import build_report, dataset_entry, render_summary, write_report
from ingest.parse import PARSERS_VERSION
from retrieval.faithfulness import check_faithfulness
from retrieval.models import AccessFilter
from retrieval.settings import Settings
from retrieval.sparse import ANALYZER_VERSION

INDEX_VERSION = 4
"""Bump to invalidate every cached evaluation index (e.g. after a chunking change; 2: chunks
keep the spaces and line breaks between their sentences; 3: title vectors without ties;
4: BM25 term weights without ties). A new term analyzer needs no bump: its
``ANALYZER_VERSION`` is part of the fingerprint."""
INDEX_MARKER = "eval-index.json"
RETRIEVAL_DEPTH = 30
"""Chunks asked for per question: enough for 10 distinct documents in most rankings."""
INDEX_SETTINGS = (
    "embedder.models",
    "embedder.st_model_path",
    "retrieval.chunk_size",
    "retrieval.chunk_overlap",
    "qdrant.collection",
    "qdrant.local_mode",
)
"""Settings that change what is indexed; query-time settings do not re-index."""
_SECRET_KEY = re.compile(r"(api_key|password|secret|token)", re.IGNORECASE)


class EvalError(RuntimeError):
    """The evaluation cannot run (bad variant, duplicate dataset names, indexing failed)."""


# --- variants -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    """A named configuration: dotted settings paths to override, e.g.
    ``Variant("dense-e5", {"embedder.models": ["e5"], "retrieval.use_bm25": False})``."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_VARIANT = Variant("default")


def apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """A validated copy of ``settings`` with dotted keys replaced (environment not re-read).

    :raises EvalError: for a key that is not a setting or a value that does not validate.
    """
    data = settings.model_dump()
    for dotted, value in overrides.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                raise EvalError(f"unknown setting {dotted!r}")
            node = child
        if last not in node:
            raise EvalError(f"unknown setting {dotted!r}")
        node[last] = value
    try:
        return type(settings).model_validate(data)
    except ValueError as exc:
        raise EvalError(f"invalid override {dict(overrides)!r}: {exc}") from exc


def default_variants(settings: Settings) -> list[Variant]:
    """BM25 only, dense only per configured model (and ``st`` when set), and hybrid."""
    out = [bm25_variant(settings)]
    out += dense_variants(settings)
    out.append(Variant("hybrid", {"retrieval.use_bm25": True}))
    return out


def bm25_variant(settings: Settings) -> Variant:  # noqa: ARG001 - same signature as the others
    """BM25 alone: the index keeps its dense vectors and the queries skip them."""
    return Variant("bm25", {"retrieval.use_dense": False, "retrieval.use_bm25": True})


def dense_variants(settings: Settings) -> list[Variant]:
    """One dense-only variant per configured embedding model."""
    out = [
        Variant(
            f"dense-{m}",
            {"embedder.models": [m], "embedder.st_model_path": None, "retrieval.use_bm25": False},
        )
        for m in settings.embedder.models
    ]
    if settings.embedder.st_model_path is not None:
        out.append(Variant("dense-st", {"embedder.models": [], "retrieval.use_bm25": False}))
    return out


def parse_variants(specs: Sequence[str], settings: Settings) -> list[Variant]:
    """Variants from command-line words.

    ``all`` (bm25, each dense, hybrid), ``bm25``, ``dense`` (one per configured model),
    ``dense-<model>`` (any model name), ``hybrid``, ``default``, or a custom
    ``NAME:key=value,key=value`` with JSON values (``"top:retrieval.top_k=12"``). Words are
    separated by spaces, or by commas outside a custom spec. Duplicates (by name) are dropped.

    :raises EvalError: for an unknown word or a malformed custom spec.
    """
    found: dict[str, Variant] = {}
    for spec in specs:
        for chunk in (w for w in re.split(r"\s+", spec.strip()) if w):
            words = [chunk] if ":" in chunk else [w for w in chunk.split(",") if w]
            for word in words:
                for v in _parse_one(word, settings):
                    found.setdefault(v.name, v)
    for v in found.values():
        apply_overrides(settings, v.overrides)  # fail before any indexing starts
    return list(found.values())


def _parse_one(word: str, settings: Settings) -> list[Variant]:
    if ":" in word:
        name, _, body = word.partition(":")
        if not name:
            raise EvalError(f"variant {word!r} needs a name before ':'")
        overrides: dict[str, Any] = {}
        for item in _split_top(body):
            key, eq, raw = item.partition("=")
            if not eq or not key:
                raise EvalError(f"variant {word!r}: expected key=value, got {item!r}")
            try:
                overrides[key.strip()] = json.loads(raw)
            except ValueError:
                overrides[key.strip()] = raw
        return [Variant(name, overrides)]
    named = {v.name: v for v in default_variants(settings)}
    if word == "all":
        return list(named.values())
    if word == "dense":
        return dense_variants(settings)
    if word == "default":
        return [DEFAULT_VARIANT]
    if word in named:
        return [named[word]]
    if word.startswith("dense-"):
        model = word.removeprefix("dense-")
        return [
            Variant(
                word,
                {
                    "embedder.models": [model],
                    "embedder.st_model_path": None,
                    "retrieval.use_bm25": False,
                },
            )
        ]
    raise EvalError(f"unknown variant {word!r} (all, bm25, dense, dense-<model>, hybrid, NAME:k=v)")


def _split_top(body: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``a=[1,2],b=3`` -> ``["a=[1,2]", "b=3"]``."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quote = 0, ""
    for ch in body:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


# --- settings, cache folders ----------------------------------------------------------------


def eval_settings(settings: Settings, data_dir: Path, *, cache: Path) -> Settings:
    """The settings the evaluation asks with: its own embedded store and SQLite in
    ``data_dir``, the embedding cache shared across runs in ``cache``, the confidence gate open
    (threshold 0). Everything that decides the answer is the configured one: the retrieval
    depth the metrics need is asked per question (``KnowledgeBase.ask(depth=...)``)."""
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "qdrant.url": None,
        "qdrant.api_key": None,
        "qdrant.path": None,
        "embedding_cache": cache / "embeddings.sqlite3",
        "public_base_url": "",
        "retrieval.confidence_threshold": 0.0,
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
        from ingest.pipeline import RecordDoc
        from retrieval.service import KnowledgeBase

        def record(doc: CorpusDoc) -> Any:
            return RecordDoc(document_id=doc.id, title=doc.title, text=doc.text, kind=doc.kind)

        return cls(open_kb=KnowledgeBase.open, ingestor=_PipelineIngestor, record=record)


class _PipelineIngestor:
    """``ingest.pipeline.Ingestor`` whose catalog connection is released after each call."""

    def __init__(self, kb: Any) -> None:
        from ingest.pipeline import Ingestor

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
                from ingest.sources import walk_source

                self._ids = {f.document_id: f.relpath for f in walk_source(self.dataset.corpus)}
            except Exception:  # the source-path fallback still works
                self._ids = {}
        return self._ids


# --- one dataset, one configuration ---------------------------------------------------------


@dataclass(slots=True)
class DatasetRun:
    """What one dataset under one configuration produced."""

    dataset: EvalDataset
    variant: Variant
    entry: dict[str, Any]
    outcomes: list[Outcome]
    details: list[dict[str, Any]]


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


def ask_all(
    kb: Any,
    dataset: EvalDataset,
    *,
    keys: DocKeys | None = None,
    progress: bool = True,
    depth: int | None = RETRIEVAL_DEPTH,
    memory: Any = None,
) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Ask every question of ``dataset`` (``depth`` passages retrieved for the retrieval
    metrics; the answer comes from the configured ones); :returns: outcomes and per-question
    log lines.

    An exception while asking is recorded on the question (``error``) and the run goes on.
    ``memory`` (the question memory of a history replay, :mod:`eval.loop`) is asked with.
    """
    from tqdm import tqdm

    keys = keys or DocKeys(dataset)
    outcomes: list[Outcome] = []
    details: list[dict[str, Any]] = []
    bar = tqdm(dataset.questions, desc=dataset.name, unit="q", disable=not progress, leave=False)
    for q in bar:
        t0 = time.perf_counter()
        try:
            extra = {"memory": memory} if memory is not None else {}
            result = kb.ask(
                q.text, acl=AccessFilter(groups=q.groups), lang=q.lang, depth=depth, **extra
            )
            latency = (time.perf_counter() - t0) * 1000
            outcome, detail = _outcome(q, result, latency, keys)
        except Exception as exc:  # one bad question must not stop the run
            error = f"{type(exc).__name__}: {exc}"[:500]
            outcome = Outcome(question=q, status="error", error=error)
            detail = {"error": error}
        outcomes.append(outcome)
        details.append({"id": q.id, **detail})
    return outcomes, details


def _outcome(q: Any, result: Any, latency: float, keys: DocKeys) -> tuple[Outcome, dict[str, Any]]:
    passages = list(result.passages)
    ranked = tuple(keys.key(p.chunk.document_id, p.chunk.source_path) for p in passages)
    citations = list(result.citations)
    cited = tuple(keys.key(c.document_id, getattr(c, "source_path", None)) for c in citations)
    status: Status = "answered" if result.status == "answered" else "escalated"
    faith = None
    unsupported: list[str] = []
    if status == "answered":
        report = check_faithfulness(result.answer, cited_texts(citations, passages))
        faith = report.score
        unsupported = [v.text for v in report.unsupported]
    # With an LLM endpoint configured the ask path generates (issue 7): keep what it did.
    generation = getattr(result, "generation", None)
    model_faith = getattr(generation, "score", None)
    refused = bool(getattr(generation, "refused", False)) and result.status == "escalated"
    outcome = Outcome(
        question=q,
        ranked=ranked,
        cited=cited,
        confidence=float(result.confidence),
        status=status,
        latency_ms=latency,
        faithfulness=faith,
        mode=getattr(result, "mode", None),
        fallback_reason=getattr(result, "fallback_reason", None),
        model_faithfulness=model_faith,
        model_refused=refused,
    )
    detail = {
        "status": status,
        "confidence": float(result.confidence),
        "ranked": list(dict.fromkeys(ranked))[:10],
        "cited": list(cited),
        "answer": str(result.answer)[:1000],
        "faithfulness": faith,
        "unsupported": unsupported,
        "latency_ms": round(latency, 2),
    }
    memory = getattr(result, "memory", None)
    if memory:
        detail["memory"] = memory
    if generation is not None:
        detail["mode"] = outcome.mode
        detail["fallback_reason"] = outcome.fallback_reason
        detail["model_faithfulness"] = model_faith
        detail["model_refused"] = refused
        detail["model_removed"] = [r.to_dict() for r in getattr(generation, "removed", [])]
        detail["model_error"] = getattr(generation, "error", None)
    return outcome, detail


def cited_texts(citations: Sequence[Any], passages: Sequence[Any]) -> dict[int, str]:
    """Citation number -> full text of the cited passage (matched by ``chunk_id`` to a passage's
    ``point_id``; the citation's snippet when no passage matches)."""
    by_point: dict[str, str] = {}
    for p in passages:
        point = getattr(p.chunk, "point_id", None)
        if point is not None:
            by_point.setdefault(str(point), p.chunk.text)
    out: dict[int, str] = {}
    for c in citations:
        chunk_id = getattr(c, "chunk_id", None)
        text = by_point.get(str(chunk_id)) if chunk_id is not None else None
        out[int(c.n)] = text if text is not None else str(getattr(c, "snippet", ""))
    return out


def evaluate_dataset(
    dataset: EvalDataset,
    settings: Settings,
    variant: Variant,
    *,
    cache: Path,
    backend: Backend,
    corpus_hash: str | None = None,
    target: float = DEFAULT_WRONG_ANSWER_TARGET,
    depth: int | None = RETRIEVAL_DEPTH,
    reindex: bool = False,
    progress: bool = True,
    loop: LoopOptions | None = None,
) -> DatasetRun:
    """Index (or reuse), ask, score one dataset under ``variant``; with ``loop``, replay a
    history through the product's feedback paths first (:mod:`eval.loop`)."""
    configured = apply_overrides(settings, variant.overrides)
    threshold = configured.retrieval.confidence_threshold
    digest = corpus_hash or dataset.corpus_hash()
    data_dir = data_dir_for(cache, dataset, configured, digest)
    if reindex or (data_dir.exists() and not (data_dir / INDEX_MARKER).is_file()):
        shutil.rmtree(data_dir, ignore_errors=True)  # half-built: start clean
    data_dir.mkdir(parents=True, exist_ok=True)
    run_settings = eval_settings(configured, data_dir, cache=cache)
    kb = backend.open_kb(run_settings)
    try:
        index_seconds, reused, index_report = ensure_index(kb, dataset, data_dir, backend)
        warm_up = getattr(kb, "warm_up", None)
        if callable(warm_up):
            warm_up()
        if loop is None:
            outcomes, details = ask_all(
                kb, dataset, keys=DocKeys(dataset), progress=progress, depth=depth
            )
            looped: dict[str, Any] = {}
        else:
            outcomes, details, looped = replay_and_ask(
                kb, dataset, loop, threshold=threshold, progress=progress, depth=depth
            )
    finally:
        kb.close()
    summary = summarize(outcomes, threshold=threshold, target=target)
    errors = [o.error for o in outcomes if o.error]
    entry = dataset_entry(
        variant.name,
        summary,
        index_seconds=index_seconds,
        extra={
            "index_reused": reused,
            "index": index_report,
            "data_dir": str(data_dir),
            "overrides": {k: _jsonable(v) for k, v in variant.overrides.items()},
            "error_examples": sorted(set(errors))[:5],
            **looped,
        },
    )
    for o, d in zip(outcomes, details, strict=True):
        d.update(
            dataset=dataset.name,
            variant=variant.name,
            answerable=o.question.answerable,
            gold=list(o.question.gold_ids),
            answered=answered_at(o, threshold),
        )
    return DatasetRun(dataset, variant, entry, outcomes, details)


def replay_and_ask(
    kb: Any,
    dataset: EvalDataset,
    loop: LoopOptions,
    *,
    threshold: float,
    progress: bool,
    depth: int | None,
) -> tuple[list[Outcome], list[dict[str, Any]], dict[str, Any]]:
    """Ask the test questions without memory, replay the history, ask them again with the
    memory it built (and stream them with feedback for the learning curve).

    :returns: the outcomes and details with history, and the report's ``without_history``,
        ``history`` (and ``learning_curve``) entries.
    """
    split = split_history(dataset, loop)
    test = replace(dataset, questions=split.test)
    keys = DocKeys(dataset)
    before, _ = ask_all(kb, test, keys=keys, progress=progress, depth=depth)
    with loop_database() as db:
        sim = Simulation(
            kb,
            db,
            keys=keys.key,
            documents=document_keys(dataset, keys),
            noise=loop.noise,
            rng=random.Random(loop.seed),
        )
        for q in split.history:
            sim.step(q)
        replayed = dict(sim.actions)
        memory = memory_of(kb, db)
        outcomes, details = ask_all(
            kb, test, keys=keys, progress=progress, depth=depth, memory=memory
        )
        extra: dict[str, Any] = {
            "without_history": {
                "answering": answering_metrics(before, threshold),
                "retrieval": retrieval_metrics(before),
            },
            "history": {
                "source": split.source,
                "questions": len(split.history),
                "test_questions": len(split.test),
                "feedback_noise": loop.noise,
                "actions": replayed,
                "memory_entries": len(memory) if memory is not None else 0,
                "memory_model_fitted": bool(memory is not None and memory.model.fitted),
                "changed": changed_outcomes(before, outcomes, threshold),
            },
        }
        if loop.learning_curve:
            sim.actions.clear()
            turns = [sim.step(q) for q in split.test]
            extra["learning_curve"] = {
                "window": loop.window,
                "points": learning_curve(turns, split.test, loop.window),
                "actions": dict(sim.actions),
            }
    return outcomes, details, extra


def changed_outcomes(
    before: Sequence[Outcome], after: Sequence[Outcome], threshold: float
) -> dict[str, list[str]]:
    """Question ids whose outcome the history improved (``gained``: now right, before not) or
    worsened (``lost``); right is a correct answer, or an escalation when there is none."""

    def right(o: Outcome) -> bool:
        answered = answered_at(o, threshold)
        return (answered and o.cites_gold) if o.question.answerable else not answered

    out: dict[str, list[str]] = {"gained": [], "lost": []}
    for b, a in zip(before, after, strict=True):
        if right(a) != right(b):
            out["gained" if right(a) else "lost"].append(a.question.id)
    return out


def failed_run(
    dataset: EvalDataset,
    settings: Settings,
    variant: Variant,
    exc: BaseException,
    *,
    target: float = DEFAULT_WRONG_ANSWER_TARGET,
) -> DatasetRun:
    """The row of a configuration that could not run: every question counts as an error."""
    message = f"{type(exc).__name__}: {exc}"[:500]
    outcomes = [Outcome(question=q, status="error", error=message) for q in dataset.questions]
    threshold = apply_overrides(settings, variant.overrides).retrieval.confidence_threshold
    entry = dataset_entry(
        variant.name,
        summarize(outcomes, threshold=threshold, target=target),
        index_seconds=None,
        extra={
            "failed": message,
            "overrides": {k: _jsonable(v) for k, v in variant.overrides.items()},
            "error_examples": [message],
        },
    )
    return DatasetRun(dataset, variant, entry, outcomes, [])


# --- the whole run --------------------------------------------------------------------------


@dataclass(slots=True)
class EvalRun:
    """A finished run: the report, where it was written and the text to print."""

    report: dict[str, Any]
    run_dir: Path
    summary: str
    comparison: str | None = None


def run_eval(
    paths: Sequence[Path],
    settings: Settings,
    *,
    out: Path = Path("eval-runs"),
    variants: Sequence[Variant] = (),
    compare_previous: bool = False,
    cache: Path | None = None,
    target: float = DEFAULT_WRONG_ANSWER_TARGET,
    depth: int | None = RETRIEVAL_DEPTH,
    reindex: bool = False,
    progress: bool = True,
    plots: bool = True,
    backend: Backend | None = None,
    loop: LoopOptions | None = None,
) -> EvalRun:
    """Evaluate every dataset under the default configuration and each variant; write
    ``<out>/runs/<timestamp>/`` (report.json, report.html, questions.jsonl), copy the report
    to ``<out>/``, append ``<out>/history.jsonl``.

    :param paths: dataset folders and/or cases files.
    :param compare_previous: also compare with the previous run over the same datasets.
    :param cache: where indexes live (default ``<out>/cache``).
    :param loop: replay each dataset's history first (``kb eval --history``, :mod:`eval.loop`).
    :raises DatasetError: for a missing or malformed dataset.
    :raises EvalError: for duplicate dataset names or a bad variant.
    """
    datasets = [load_dataset(Path(p)) for p in paths]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise EvalError(f"two datasets share a name: {names}")
    if not datasets:
        raise DatasetError("no dataset given")
    for v in variants:
        apply_overrides(settings, v.overrides)
    backend = backend or Backend.default()
    cache = cache or out / "cache"
    started = utc_now()
    base_dump = public_settings(settings)

    entries: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    rebuilt: set[Path] = set()  # with reindex: each index folder is rebuilt once per run
    for dataset in datasets:
        digest = dataset.corpus_hash()
        done: dict[str, DatasetRun] = {}
        for variant in (DEFAULT_VARIANT, *variants):
            effective = json.dumps(
                public_settings(apply_overrides(settings, variant.overrides)), sort_keys=True
            )
            if effective in done:  # same configuration as one already run: same numbers
                same = done[effective]
                entry = {
                    **same.entry,
                    "variant": variant.name,
                    "overrides": {k: _jsonable(x) for k, x in variant.overrides.items()},
                    "same_as": same.variant.name,
                }
            else:
                folder = data_dir_for(
                    cache, dataset, apply_overrides(settings, variant.overrides), digest
                )
                try:
                    result = evaluate_dataset(
                        dataset,
                        settings,
                        variant,
                        cache=cache,
                        backend=backend,
                        corpus_hash=digest,
                        target=target,
                        depth=depth,
                        reindex=reindex and folder not in rebuilt,
                        progress=progress,
                        loop=loop,
                    )
                except Exception as exc:
                    if variant is DEFAULT_VARIANT:
                        raise
                    # A variant the pipeline cannot run fails its row, not the whole run.
                    result = failed_run(dataset, settings, variant, exc, target=target)
                rebuilt.add(folder)
                done[effective] = result
                entry = result.entry
                details += result.details
            if variant is DEFAULT_VARIANT:
                entries[dataset.name] = entry
            else:
                rows.append({"dataset": dataset.name, **entry})

    report = build_report(
        started=started.isoformat().replace("+00:00", "Z"),
        commit=git_commit(Path(__file__).resolve().parent.parent),
        settings={
            "kb": base_dump,
            "eval": {
                "target_wrong_answer_rate": target,
                "retrieval_depth": depth,
                "index_version": INDEX_VERSION,
                "datasets": [str(p) for p in paths],
                "history": None if loop is None else _jsonable(asdict(loop)),
            },
            "variants": {
                v.name: {k: _jsonable(x) for k, x in v.overrides.items()} for v in variants
            },
        },
        datasets=entries,
        variants=rows,
    )
    previous = previous_run(load_history(out), names) if compare_previous else None
    comparison = (
        format_comparison(compare(report, previous), previous) if compare_previous else None
    )

    run_dir = new_run_dir(out, started)
    write_report(report, run_dir, plots=plots)
    with (run_dir / "questions.jsonl").open("w", encoding="utf-8") as fh:
        for line in details:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    for name in ("report.json", "report.html"):
        shutil.copyfile(run_dir / name, out / name)
    append_history(out, report, run_dir)
    return EvalRun(
        report=report,
        run_dir=run_dir,
        summary=render_summary(report, comparison=comparison),
        comparison=comparison,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
