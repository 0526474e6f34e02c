"""Fit the confidence model (``retrieval.answer.ConfidenceModel``) to labelled questions.

A question is a positive when its best passage comes from a gold document; unanswerable
questions and wrong top passages are negatives. Logistic regression by iteratively reweighted
least squares with a small ridge, numpy only. Each dataset gets the same total weight, so a
large set does not drown a small one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrieval.answer import FEATURES, ConfidenceModel


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
    x, y, w = np.asarray(rows), np.asarray(labels), np.asarray(weights)
    w = w / w.mean()
    beta = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ beta, -50, 50)))
        grad = x.T @ (w * (y - p)) - penalty @ beta
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return ConfidenceModel(
        bias=float(beta[0]),
        weights=tuple((f, float(b)) for f, b in zip(features, beta[1:], strict=True)),
    )
