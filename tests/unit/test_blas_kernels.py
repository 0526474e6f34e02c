"""The same numbers whatever BLAS kernel numpy picks for the CPU: the question memory learns
from every answer it gave, so a cosine one float32 step apart on another CPU changed the
replay's figures (``kb eval --history``). OpenBLAS picks its kernel by CPU unless
``OPENBLAS_CORETYPE`` names one: each computation runs in a process on the kernel chosen here
and in one on Haswell's, the kernel of AVX2 machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json
import numpy as np
from kb.retrieval.memory import fit_logistic
from kb.retrieval.numeric import cosine, cosines, dot

rng = np.random.default_rng(7)
rows = rng.standard_normal((300, 384)).astype(np.float32)
unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
query = rng.standard_normal(384).astype(np.float32)
x = np.hstack([np.ones((400, 1)), rng.standard_normal((400, 5))])
y = (rng.random(400) < 0.3).astype(float)
weights = fit_logistic(x, y)
print(json.dumps({
    "cosine": [cosine(query, r.tolist()).hex() for r in rows],
    "cosines": [float(v).hex() for v in cosines(unit.astype(np.float64), query.tolist())],
    "fit": [float(w).hex() for w in weights],
    "dot": dot(weights, x[0].tolist()).hex(),
}))
"""


def _avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _run(coretype: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(not _avx2(), reason="OpenBLAS's Haswell kernel needs AVX2")
def test_cosines_and_fits_are_the_same_on_every_blas_kernel() -> None:
    assert _run(None) == _run("Haswell")
