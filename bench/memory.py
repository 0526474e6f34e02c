"""Measure what a change of the question memory costs the next question (issue 22).

With n synthetic confirmed questions (50 topics in 384 dimensions, a tenth of them gaps, half
staff-confirmed), it times the leave-one-out fit (what ``support.memory_refit=inline`` makes the
next question wait for) and the rebuild with the previous weights (what it waits for with the
default, ``background``). Run: ``.venv/bin/python -m bench.memory [N ...]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from kb.retrieval.memory import MemoryEntry, QuestionMemory

TOPICS = 50
DIM = 384


def entries(n: int, seed: int = 0) -> list[MemoryEntry]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(TOPICS, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = []
    for i in range(n):
        topic = i % TOPICS
        vector = centres[topic] + rng.normal(size=DIM) * 0.2 / np.sqrt(DIM)
        out.append(
            MemoryEntry(
                id=i,
                kind="gap" if i % 10 == 0 else "pair",
                vector=vector.tolist(),
                terms=frozenset({f"topic{topic}", f"word{i}"}),
                document_id=f"doc-{topic}-{i % 3}",
                chunk_id=f"chunk-{topic}-{i % 3}",
                staff=i % 2 == 0,
                confirmer=f"user-{i}",
            )
        )
    return out


def main(sizes: list[int]) -> None:
    print("entries  fit, inline (s)  rebuild, background (s)")  # noqa: T201
    for n in sizes:
        rows = entries(n)
        t0 = time.perf_counter()
        fitted = QuestionMemory(rows)
        t1 = time.perf_counter()
        QuestionMemory(rows, model=fitted.model)
        t2 = time.perf_counter()
        print(f"{n:7d}  {t1 - t0:15.3f}  {t2 - t1:23.3f}")  # noqa: T201


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [500, 1000, 2000, 4000])
