"""``kb train``: the ranker and the answerability model from labelled question sets (issue 21).

1. **Candidates.** Every question of every set is searched on its cached evaluation index with
   the ranker off; the top :data:`~retrieval.rerank.CANDIDATES` fused passages and their
   features (:func:`retrieval.rerank.candidate_features`) are kept with a label each (1: the
   passage's document answers the question).
2. **Ranker.** A LightGBM lambdarank model over those rows (fixed seed, deterministic, one
   thread), saved as text. Measured two ways before the shipped one is fitted on everything:
   leave one set out (train on the others, rank the third) and k-fold by question.
3. **Answerability.** Each question is asked again (gate open) with a ranker that never saw
   it (its fold's model), which gives the confidence features of the answer it would get;
   the positive class is "the answer cites a gold document". A logistic model over those
   features, fitted with :func:`eval.calibrate.fit_confidence`, is the confidence; its
   threshold is chosen on out-of-fold scores so that the mean of the sets' wrong-answer rates
   stays at or under the target (``--target``, default 0.10; :func:`choose_threshold`), never
   on the scores it is reported on.

Everything is written to ``--out`` (default ``retrieval/trained``): ``ranker.txt``,
``answerability.json`` (weights, bias, threshold) and ``report.json`` (the figures).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kb.eval.calibrate import FOLDS, fit_confidence, fold_of
from kb.eval.datasets import EvalDataset, EvalQuestion
from kb.eval.index import Backend, DocKeys, data_dir_for, ensure_index, eval_settings
from kb.eval.variants import apply_overrides
from kb.retrieval.answer import FEATURES
from kb.retrieval.calibration import threshold_for
from kb.retrieval.lang import detect_lang
from kb.retrieval.models import AccessFilter
from kb.retrieval.presets import CHUNKING, PROXIMITY
from kb.retrieval.rerank import CANDIDATES, LAMBDARANK, RANK_FEATURES, Ranker, monotone
from kb.retrieval.settings import Settings

SEED = 7
PARAMS: dict[str, Any] = {
    **LAMBDARANK,
    **monotone(RANK_FEATURES),
    "ndcg_eval_at": [1, 5, 10],
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "seed": SEED,
}
ROUNDS = 300
ANSWER_FEATURES = FEATURES
"""The answerability model's inputs: the answer's signals and the ranker's (retrieval/answer.py)."""


@dataclass(slots=True)
class Candidates:
    """One question's fused candidates: features (rows), labels, and their document keys."""

    dataset: str
    question: EvalQuestion
    features: np.ndarray[Any, np.dtype[np.float64]]
    labels: list[int]
    keys: list[str]
    fold: int = 0


@dataclass(slots=True)
class Trained:
    """What ``kb train`` produced."""

    ranker_text: str
    answerability: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    asked: list[dict[str, Any]] = field(default_factory=list)
    """Every question's answer features and label, out of fold (``unseen``: asked with a ranker
    that never saw its set), for analysis: written to ``asked.jsonl``."""


def collect_candidates(
    dataset: EvalDataset, settings: Settings, *, cache: Path, backend: Backend | None = None
) -> list[Candidates]:
    """Search every question of ``dataset`` with the ranker off; its candidates and labels."""
    backend = backend or Backend.default()
    plain = apply_overrides(settings, {"retrieval.ranker": "off"})
    data_dir = data_dir_for(cache, dataset, plain, dataset.corpus_hash())
    data_dir.mkdir(parents=True, exist_ok=True)
    kb = backend.open_kb(eval_settings(plain, data_dir, cache=cache))
    out: list[Candidates] = []
    try:
        ensure_index(kb, dataset, data_dir, backend)
        keys = DocKeys(dataset)
        for q in dataset.questions:
            lang = q.lang or detect_lang(q.text)
            acl = AccessFilter(groups=q.groups)
            passages, _ = kb.search(q.text, acl=acl, top_k=CANDIDATES, lang=lang)
            doc_keys = [keys.key(p.chunk.document_id, p.chunk.source_path) for p in passages]
            gold = set(q.gold_ids) if q.answerable else set()
            out.append(
                Candidates(
                    dataset=dataset.name,
                    question=q,
                    features=kb.rank_features(q.text, passages, lang),
                    labels=[1 if k in gold else 0 for k in doc_keys],
                    keys=doc_keys,
                    fold=fold_of(f"{dataset.name}/{q.id}"),
                )
            )
    finally:
        kb.close()
    return out


def train_ranker(rows: Sequence[Candidates], rounds: int = ROUNDS) -> str:
    """A lambdarank model over ``rows`` (questions without a gold candidate teach nothing and
    are left out); :returns: the model as text."""
    import lightgbm

    useful = [r for r in rows if any(r.labels) and len(r.labels) > 1]
    x = np.vstack([r.features for r in useful])
    y = np.concatenate([np.asarray(r.labels) for r in useful])
    group = [len(r.labels) for r in useful]
    data = lightgbm.Dataset(
        x, y, group=group, feature_name=list(RANK_FEATURES), params={"verbose": -1}
    )
    booster = lightgbm.train(dict(PARAMS), data, num_boost_round=rounds)
    text: str = booster.model_to_string()
    return text


def ranking_metrics(rows: Sequence[Candidates], ranker: Ranker | None) -> dict[str, float]:
    """Document-level MRR@10, recall@5 and hit@1 of the answerable questions, in the fused
    order (``ranker`` None) or the ranker's."""
    mrr = r5 = h1 = 0.0
    n = 0
    for r in rows:
        if not r.question.answerable or not r.question.gold_ids:
            continue
        n += 1
        order = list(range(len(r.keys)))
        if ranker is not None and len(order) > 1:
            scores = ranker.scores(r.features)
            order.sort(key=lambda i: (-round(scores[i], 9), i))
        docs = list(dict.fromkeys(r.keys[i] for i in order))
        gold = set(r.question.gold_ids)
        first = next((i for i, d in enumerate(docs[:10]) if d in gold), None)
        mrr += 1.0 / (first + 1) if first is not None else 0.0
        r5 += len(gold & set(docs[:5])) / len(gold)
        h1 += 1.0 if docs and docs[0] in gold else 0.0
    return {
        "questions": n,
        "mrr@10": round(mrr / n, 4) if n else 0.0,
        "recall@5": round(r5 / n, 4) if n else 0.0,
        "hit@1": round(h1 / n, 4) if n else 0.0,
    }


def leave_one_out(rows: Sequence[Candidates]) -> dict[str, dict[str, Any]]:
    """Per set: the fused order, a ranker trained on the other sets only, and k-fold (trained
    on the other sets and the other folds of this one)."""
    names = sorted({r.dataset for r in rows})
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        own = [r for r in rows if r.dataset == name]
        others = [r for r in rows if r.dataset != name]
        entry: dict[str, Any] = {"fused": ranking_metrics(own, None)}
        if others:
            entry["other_sets_only"] = ranking_metrics(own, Ranker(train_ranker(others)))
        ordered: dict[int, Ranker] = {}
        for f in range(FOLDS):
            train = others + [r for r in own if r.fold != f]
            ordered[f] = Ranker(train_ranker(train))
        entry["kfold"] = _pooled(own, ordered)
        out[name] = entry
    return out


def _pooled(rows: Sequence[Candidates], rankers: dict[int, Ranker]) -> dict[str, float]:
    parts = [ranking_metrics([r for r in rows if r.fold == f], rankers[f]) for f in rankers]
    n = sum(p["questions"] for p in parts)
    return {
        "questions": n,
        **{
            k: round(sum(p[k] * p["questions"] for p in parts) / n, 4) if n else 0.0
            for k in ("mrr@10", "recall@5", "hit@1")
        },
    }


@dataclass(slots=True)
class Asked:
    """One question asked with a ranker that never saw it."""

    dataset: str
    fold: int
    features: dict[str, float]
    positive: bool
    answerable: bool


def ask_out_of_fold(
    dataset: EvalDataset,
    settings: Settings,
    rankers: dict[int, str],
    *,
    cache: Path,
    backend: Backend | None = None,
) -> list[Asked]:
    """Ask every question (gate open) with its fold's ranker; the answer's features and label."""
    backend = backend or Backend.default()
    data_dir = data_dir_for(cache, dataset, settings, dataset.corpus_hash())
    kb = backend.open_kb(eval_settings(settings, data_dir, cache=cache))
    loaded = {f: Ranker(text) for f, text in rankers.items()}
    out: list[Asked] = []
    try:
        ensure_index(kb, dataset, data_dir, backend)
        keys = DocKeys(dataset)
        for q in dataset.questions:
            fold = fold_of(f"{dataset.name}/{q.id}")
            kb.use_ranker(loaded[fold])
            result = kb.ask(q.text, acl=AccessFilter(groups=q.groups), lang=q.lang)
            cited = {keys.key(c.document_id, c.source_path) for c in result.citations}
            out.append(
                Asked(
                    dataset=dataset.name,
                    fold=fold,
                    features=dict(result.features),
                    positive=q.answerable and bool(cited & set(q.gold_ids)),
                    answerable=q.answerable,
                )
            )
    finally:
        kb.close()
    return out


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def _score(model: Any, feats: dict[str, float]) -> float:
    return _sigmoid(model.bias + sum(w * feats.get(f, 0.0) for f, w in model.weights))


def choose_threshold(scored: Sequence[tuple[str, float, bool, bool]], target: float) -> float:
    """:func:`retrieval.calibration.threshold_for` (the sets' mean wrong-answer rate at most
    ``target``) on ``scored``: (set, out-of-fold confidence, positive, answerable) per question."""
    sets: dict[str, list[tuple[float, bool]]] = {}
    for name, score, positive, _answerable in scored:
        sets.setdefault(name, []).append((score, positive))
    return threshold_for(sets, target)


def refit(asked_jsonl: Path, target: float) -> dict[str, Any]:
    """:func:`fit_answerability` again from the ``asked.jsonl`` a run wrote (no asking)."""
    rows = [json.loads(line) for line in asked_jsonl.read_text(encoding="utf-8").splitlines()]
    asked = [
        Asked(r["dataset"], r["fold"], r["features"], r["positive"], r["answerable"])
        for r in rows
        if not r.get("unseen")
    ]
    return fit_answerability(asked, target)


def _rate(part: float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def answering_figures(
    rows: Sequence[tuple[float, bool, bool]], threshold: float
) -> dict[str, float | int | None]:
    """Deflection, correct deflection, wrong-answer rate and escalation recall of
    ``(confidence, positive, answerable)`` rows at ``threshold`` (eval/metrics.py's
    definitions)."""
    answered = [p for s, p, _a in rows if s >= threshold]
    unanswerable = [s for s, _p, a in rows if not a]
    return {
        "questions": len(rows),
        "deflection_rate": _rate(len(answered), len(rows)),
        "correct_deflection_rate": _rate(sum(answered), sum(1 for *_x, a in rows if a)),
        "wrong_answer_rate": _rate(sum(1 for p in answered if not p), len(answered)),
        "escalation_recall": _rate(
            sum(1 for s in unanswerable if s < threshold), len(unanswerable)
        ),
    }


def fit_answerability(asked: Sequence[Asked], target: float) -> dict[str, Any]:
    """The logistic answerability model over ``asked`` and its threshold from out-of-fold
    scores (each fold scored by a model fitted on the other folds)."""
    by_set: dict[str, list[Asked]] = {}
    for a in asked:
        by_set.setdefault(a.dataset, []).append(a)

    def fit(rows: Sequence[Asked]) -> Any:
        groups = [[(r.features, r.positive) for r in rows if r.dataset == name] for name in by_set]
        return fit_confidence(groups, features=ANSWER_FEATURES)

    scored: list[tuple[str, float, bool, bool]] = []
    for f in range(FOLDS):
        model = fit([a for a in asked if a.fold != f])
        scored += [(a.dataset, _score(model, a.features), a.positive, a.answerable)
                   for a in asked if a.fold == f]  # fmt: skip
    threshold = choose_threshold(scored, target)
    final = fit(asked)
    per_set: dict[str, Any] = {}
    for name in by_set:
        per_set[name] = answering_figures(
            [(s, p, a) for d, s, p, a in scored if d == name], threshold
        )
    return {
        "bias": round(final.bias, 4),
        "weights": {f: round(w, 4) for f, w in final.weights},
        "threshold": threshold,
        "target_wrong_answer_rate": target,
        "out_of_fold": per_set,
    }


def write(trained: Trained, out: Path) -> None:
    """Save the models and the report in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranker.txt").write_text(trained.ranker_text, encoding="utf-8")
    (out / "answerability.json").write_text(
        json.dumps(trained.answerability, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if trained.asked:
        (out / "asked.jsonl").write_text(
            "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in trained.asked),
            encoding="utf-8",
        )
    (out / "report.json").write_text(
        json.dumps(trained.report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def train(
    datasets: Sequence[EvalDataset],
    settings: Settings,
    *,
    cache: Path,
    target: float = 0.10,
    backend: Backend | None = None,
    log: Any = print,
) -> Trained:
    """The whole of ``kb train`` but the writing: candidates, the ranker measured and fitted,
    the answerability model and its threshold."""
    rows: list[Candidates] = []
    for ds in datasets:
        log(f"{ds.name}: searching {len(ds.questions)} questions for candidates")
        rows += collect_candidates(ds, settings, cache=cache, backend=backend)
    log("ranker: leave-one-set-out and k-fold")
    ranking = leave_one_out(rows)
    ranker_text = train_ranker(rows)
    folds = {f: train_ranker([r for r in rows if r.fold != f]) for f in range(FOLDS)}
    others = {ds.name: train_ranker([r for r in rows if r.dataset != ds.name]) for ds in datasets}
    asked: list[Asked] = []
    unseen: list[Asked] = []
    for ds in datasets:
        log(f"{ds.name}: asking with rankers that never saw the question")
        asked += ask_out_of_fold(ds, settings, folds, cache=cache, backend=backend)
        if len(datasets) > 1:
            lodo = dict.fromkeys(range(FOLDS), others[ds.name])
            unseen += ask_out_of_fold(ds, settings, lodo, cache=cache, backend=backend)
    answerability = fit_answerability(asked, target)
    # Fitted on these chunks and this order: a model file brings them (retrieval.settings).
    answerability |= {key: getattr(settings.retrieval, key) for key in (*CHUNKING, PROXIMITY)}
    dump = [
        {"dataset": a.dataset, "fold": a.fold, "positive": a.positive,
         "answerable": a.answerable, "features": a.features, "unseen": False}
        for a in asked
    ] + [
        {"dataset": a.dataset, "fold": a.fold, "positive": a.positive,
         "answerable": a.answerable, "features": a.features, "unseen": True}
        for a in unseen
    ]  # fmt: skip
    report: dict[str, Any] = {
        "datasets": [ds.name for ds in datasets],
        "candidates": CANDIDATES,
        "folds": FOLDS,
        "seed": SEED,
        "ranking": ranking,
        "answering_out_of_fold": answerability["out_of_fold"],
    }
    if len(datasets) > 1:
        report["answering_leave_one_set_out"] = {
            ds.name: _held_out_set(unseen, ds.name, target) for ds in datasets
        }
    return Trained(ranker_text, answerability, report, asked=dump)


def _held_out_set(asked: Sequence[Asked], name: str, target: float) -> dict[str, Any]:
    """Answering figures on set ``name`` of a model and threshold fitted on the others only."""
    train_rows = [a for a in asked if a.dataset != name]
    groups = [
        [(a.features, a.positive) for a in train_rows if a.dataset == other]
        for other in sorted({a.dataset for a in train_rows})
    ]
    model = fit_confidence(groups, features=ANSWER_FEATURES)
    threshold = choose_threshold(
        [(a.dataset, _score(model, a.features), a.positive, a.answerable) for a in train_rows],
        target,
    )
    rows = [
        (_score(model, a.features), a.positive, a.answerable) for a in asked if a.dataset == name
    ]
    return {"threshold": threshold, **answering_figures(rows, threshold)}
