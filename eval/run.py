"""``kb eval``: index each dataset once, ask every question through the ask path, report.

For each dataset and each configuration (the default, then any ``--variants``):

(Indexes: :mod:`eval.index`; configurations: :mod:`eval.variants`.)

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

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kb.eval.datasets import DatasetError, EvalDataset, load_dataset
from kb.eval.history import (
    append_history,
    compare,
    format_comparison,
    git_commit,
    load_history,
    new_run_dir,
    previous_run,
    utc_now,
)
from kb.eval.index import (
    INDEX_MARKER,
    INDEX_SETTINGS,
    INDEX_VERSION,
    Backend,
    DocKeys,
    data_dir_for,
    ensure_index,
    eval_settings,
    index_fingerprint,
    index_summary,
    public_settings,
)
from kb.eval.loop import LoopOptions, check_splits, replay_and_ask
from kb.eval.metrics import DEFAULT_WRONG_ANSWER_TARGET, Outcome, Status, answered_at, summarize
from kb.eval.report import build_report, dataset_entry, render_summary, write_report
from kb.eval.variants import (
    DEFAULT_VARIANT,
    EvalError,
    Variant,
    apply_overrides,
    default_variants,
    parse_variants,
)
from kb.retrieval.faithfulness import check_faithfulness
from kb.retrieval.models import AccessFilter
from kb.retrieval.settings import Settings

__all__ = [
    # Defined in eval/index.py and eval/variants.py since issue 26; imported from here before.
    "DEFAULT_VARIANT",
    "INDEX_MARKER",
    "INDEX_SETTINGS",
    "INDEX_VERSION",
    "RETRIEVAL_DEPTH",
    "Backend",
    "DatasetRun",
    "DocKeys",
    "EvalError",
    "EvalRun",
    "Variant",
    "apply_overrides",
    "ask_all",
    "cited_texts",
    "data_dir_for",
    "default_variants",
    "ensure_index",
    "eval_settings",
    "evaluate_dataset",
    "index_fingerprint",
    "index_summary",
    "parse_variants",
    "public_settings",
    "run_eval",
]

RETRIEVAL_DEPTH = 30
"""Chunks asked for per question: enough for 10 distinct documents in most rankings."""


# --- one dataset, one configuration ---------------------------------------------------------


@dataclass(slots=True)
class DatasetRun:
    """What one dataset under one configuration produced."""

    dataset: EvalDataset
    variant: Variant
    entry: dict[str, Any]
    outcomes: list[Outcome]
    details: list[dict[str, Any]]


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
                kb, dataset, loop, ask_all, threshold=threshold, progress=progress, depth=depth
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
    :raises DatasetError: for a missing or malformed dataset, or several history splits of
        one with a ``history.jsonl``.
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
    if loop is not None:
        for dataset in datasets:
            check_splits(dataset, loop)  # before anything is indexed
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
