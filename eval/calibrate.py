"""Fit the confidence model (``retrieval.answer.ConfidenceModel``) to labelled questions.

A question is a positive when its best passage comes from a gold document; unanswerable
questions and wrong top passages are negatives. Logistic regression by iteratively reweighted
least squares with a small ridge, numpy only. Each dataset gets the same total weight, so a
large set does not drown a small one.

``--write FILE`` also writes the calibration the answer threshold is read from
(``retrieval.calibration``): every question's out-of-fold confidence (5 folds by a hash of the
question id, each scored by a model fitted on the other folds of every set) and whether its
answer was right, with the model fitted on everything.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kb.eval.datasets import EvalDataset, load_dataset
from kb.eval.index import Backend, DocKeys, data_dir_for, ensure_index, eval_settings
from kb.eval.run import RETRIEVAL_DEPTH
from kb.retrieval.answer import FEATURES, ConfidenceModel
from kb.retrieval.calibration import Calibration
from kb.retrieval.models import AccessFilter
from kb.retrieval.settings import Settings

FOLDS = 5

Labelled = tuple[str, dict[str, float], bool]
"""One question of a set: its id, its answer's confidence features, whether the answer is right."""


def fold_of(question_id: str, folds: int = FOLDS) -> int:
    """A question's fold, stable across runs and machines."""
    return int(hashlib.sha256(question_id.encode()).hexdigest(), 16) % folds


def fit_confidence(
    groups: Sequence[Sequence[tuple[dict[str, float], bool]]],
    *,
    features: Sequence[str] = FEATURES,
    ridge: float = 1e-2,
    iterations: int = 50,
) -> ConfidenceModel:
    """Fit on several datasets, each a list of (features, is_positive) pairs."""
    rows, labels, weights = [], [], []
    for group in groups:
        if not group:
            continue
        for feats, positive in group:
            rows.append([1.0, *(feats.get(f, 0.0) for f in features)])
            labels.append(1.0 if positive else 0.0)
            weights.append(1.0 / len(group))
    if not rows:
        raise ValueError("no labelled questions to fit the confidence model on")
    x, y, w = np.asarray(rows), np.asarray(labels), np.asarray(weights)
    w = w / w.mean()
    beta = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -50, 50)))
        grad = x.T @ (w * (y - p)) - penalty @ beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + penalty
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:  # separable with few rows: the bias runs off; least squares
            step = np.linalg.pinv(hess) @ grad
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return ConfidenceModel(
        bias=float(beta[0]),
        weights=tuple((f, float(b)) for f, b in zip(features, beta[1:], strict=True)),
    )


def calibrate(
    sets: Mapping[str, Sequence[Labelled]], *, features: Sequence[str] = FEATURES
) -> Calibration:
    """The model fitted on every set, and each question's confidence under the model fitted
    without its fold (:func:`fold_of` of ``set/id``)."""
    fold = {(n, qid): fold_of(f"{n}/{qid}") for n, rows in sets.items() for qid, *_ in rows}

    def fit(keep: int | None) -> ConfidenceModel:
        return fit_confidence(
            [
                [(feats, right) for qid, feats, right in rows if fold[name, qid] != keep]
                for name, rows in sets.items()
            ],
            features=features,
        )

    models = [fit(f) for f in range(FOLDS)]
    final = fit(None)
    return Calibration(
        bias=round(final.bias, 3),
        weights=tuple((f, round(w, 3)) for f, w in final.weights),
        sets={
            name: tuple((models[fold[name, qid]].score(feats), right) for qid, feats, right in rows)
            for name, rows in sets.items()
        },
    )


def collect(
    dataset: EvalDataset,
    settings: Settings,
    *,
    cache: Path,
    backend: Backend | None = None,
) -> list[dict[str, Any]]:
    """Ask every question of ``dataset`` on its cached evaluation index (built when missing)
    and return one row per question: its confidence features, whether it is a positive (the
    answer cites a gold document), and what the features were computed from."""
    backend = backend or Backend.default()
    data_dir = data_dir_for(cache, dataset, settings, dataset.corpus_hash())
    data_dir.mkdir(parents=True, exist_ok=True)
    kb = backend.open_kb(eval_settings(settings, data_dir, cache=cache))
    rows: list[dict[str, Any]] = []
    try:
        ensure_index(kb, dataset, data_dir, backend)
        keys = DocKeys(dataset)
        for q in dataset.questions:
            result = kb.ask(
                q.text, acl=AccessFilter(groups=q.groups), lang=q.lang, depth=RETRIEVAL_DEPTH
            )
            cited = {keys.key(c.document_id, c.source_path) for c in result.citations}
            rows.append(
                {
                    "dataset": dataset.name,
                    "id": q.id,
                    "question": q.text,
                    "answerable": q.answerable,
                    "positive": q.answerable and bool(cited & set(q.gold_ids)),
                    "lang": result.lang,
                    "answer": result.answer,
                    "features": dict(result.features),
                    "passages": [
                        {
                            "lang": p.chunk.lang,
                            "kind": p.chunk.kind,
                            "score": p.score,
                            "signals": dict(p.signals),
                            "text": p.chunk.text[:1500],
                        }
                        for p in result.passages[:3]
                    ],
                }
            )
    finally:
        kb.close()
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m kb.eval.calibrate DATASET... [--rows FILE]``: fit the confidence model on the
    datasets' questions (each dataset weighted equally) and print it as settings."""
    parser = argparse.ArgumentParser(prog="python -m kb.eval.calibrate", description=main.__doc__)
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("eval-runs/cache"))
    parser.add_argument("--rows", type=Path, help="also write the per-question rows (JSON lines)")
    parser.add_argument(
        "--write",
        type=Path,
        help="also write the calibration (out-of-fold confidences) the threshold is read from",
    )
    parser.add_argument(
        "--features",
        help="comma-separated features to fit (default: those the configured model weighs); "
        f"any of {', '.join(FEATURES)}",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    features = (
        [f.strip() for f in args.features.split(",") if f.strip()]
        if args.features
        else list(settings.retrieval.confidence_weights)
    )
    unknown = sorted(set(features) - set(FEATURES))
    if unknown:
        parser.error(f"--features: unknown feature(s) {', '.join(unknown)}")
    sets: dict[str, list[Labelled]] = {}
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(args.rows.open("w", encoding="utf-8")) if args.rows else None
        for path in args.datasets:
            dataset = load_dataset(path)
            rows = collect(dataset, settings, cache=args.cache)
            sets[dataset.name] = [(r["id"], r["features"], r["positive"]) for r in rows]
            for r in rows:
                if out is not None:
                    out.write(json.dumps(r, ensure_ascii=False) + "\n")
    try:
        calibration = calibrate(sets, features=features)
    except ValueError as exc:
        parser.error(str(exc))
    printed: dict[str, Any] = {
        "KB_RETRIEVAL__CONFIDENCE_BIAS": calibration.bias,
        "KB_RETRIEVAL__CONFIDENCE_WEIGHTS": dict(calibration.weights),
    }
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        made = {"command": " ".join(["python -m kb.eval.calibrate", *map(str, args.datasets)])}
        args.write.write_text(
            json.dumps({**made, "folds": FOLDS, **calibration.to_dict()}) + "\n", encoding="utf-8"
        )
        printed["KB_ANSWER__CALIBRATION"] = str(args.write)
        printed["threshold_at_target_wrong_rate"] = {
            str(t): calibration.threshold(t) for t in (0.05, 0.1, 0.15, 0.2)
        }
    print(json.dumps(printed, indent=2))  # noqa: T201 - the command's output


if __name__ == "__main__":
    main()
