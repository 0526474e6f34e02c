"""Vector arithmetic that gives the same numbers on every CPU.

numpy's BLAS (OpenBLAS, built with ``DYNAMIC_ARCH``) picks its kernels by CPU, and each kernel
sums a dot product in its own order: in float32, two kernels give a cosine a float32 step apart.
The question memory learns from every answer it gave, so one such step moved the figures of
``kb eval --history`` on another CPU (emanual_tv seeds 0-2: 0.710 / 0.168 on the kernel this
machine's CPU gets, 0.706 / 0.176 on Haswell's; docs/experiments.md, "the replay the same on
every BLAS kernel"). Here products run in float64, where the kernels differ near the sixteenth
digit, and results are kept to twelve decimals, so equal inputs stay equal; a weighted sum is
exactly rounded (:func:`math.fsum`), independent of any summation order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DECIMALS = 12


def dot(weights: Sequence[float], row: Sequence[float]) -> float:
    """``weights`` . ``row``, exactly rounded."""
    return math.fsum(float(w) * float(x) for w, x in zip(weights, row, strict=True))


def cosine(query: Sequence[float], stored: Sequence[float]) -> float:
    """Cosine similarity of two vectors; 0 when either is zero."""
    q = np.asarray(query, dtype=np.float64)
    v = np.asarray(stored, dtype=np.float64)
    denom = float(np.linalg.norm(q) * np.linalg.norm(v))
    return round(float(np.dot(q, v)) / denom, DECIMALS) if denom > 0 else 0.0


def unit_rows(vectors: Sequence[Sequence[float]]) -> np.ndarray[Any, Any]:
    """``vectors`` as float64 rows scaled to length 1 (a zero row stays zero), for
    :func:`cosines`; an empty matrix for none."""
    if not len(vectors):
        return np.zeros((0, 0), dtype=np.float64)
    m = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1, norms)


def cosines(matrix: np.ndarray[Any, Any], vector: Sequence[float]) -> np.ndarray[Any, Any]:
    """Cosine of ``vector`` with each row of ``matrix`` (:func:`unit_rows`)."""
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    return np.round(matrix @ (v / norm if norm else v), DECIMALS)
