"""Language of a text, by script: Japanese when kana or kanji make up a real share of it; and
the knowledge base's other language."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence

import numpy as np

from kb.retrieval.models import Lang
from kb.retrieval.protocols import VectorStore

_JA = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_LATIN = re.compile(r"[A-Za-z]")


def detect_lang(text: str) -> Lang:
    """``"ja"`` when Japanese characters are at least a fifth of the letters, else ``"en"``.

    Counting characters, not words, keeps product codes and English terms inside Japanese
    sentences (「MF-3400 の Wi-Fi 設定」) from tipping the balance.
    """
    ja = len(_JA.findall(text))
    latin = len(_LATIN.findall(text))
    if ja == 0:
        return "en"
    return "ja" if ja * 3 >= latin * 0.6 else "en"


def other_lang(lang: Lang) -> Lang:
    """The knowledge base's other language."""
    return "en" if lang == "ja" else "ja"


def toward_other_language(
    vector: Sequence[float], lang: Lang, direction: Sequence[float], shift: float
) -> list[float]:
    """A question vector moved ``shift`` of the way from its language toward the other one.

    A multilingual model's vectors carry the language they were written in: the mean Japanese
    passage and the mean English passage differ by ``direction`` (``ja - en``), and a Japanese
    question sits on the Japanese side of it, so an English passage that says the same scores
    below a Japanese one that does not. Subtracting part of that difference from the question
    (adding it for English) lets the dense search compare passages of both languages on what
    they say, while BM25, which matches words of one language, keeps the question's own
    language ahead when it answers (Libovický et al., "On the language neutrality of pre-trained
    multilingual representations", 2020). The result is unit length.
    """
    q = np.asarray(vector, np.float64)
    d = np.asarray(direction, np.float64)
    moved = q - shift * d if lang == "ja" else q + shift * d
    norm = float(np.linalg.norm(moved))
    return [float(x) for x in (moved / norm if norm > 0 else q)]


LANGUAGE_MIN_CHUNKS = 20
"""Chunks each language needs before questions move toward the other one
(``retrieval.language_shift``): fewer make a noisy mean, and a one-language knowledge base has
nothing to move toward."""
LANGUAGE_SAMPLE = 2000
"""Chunks per language averaged for the language direction (the mean of more moves little)."""
LANGUAGE_DIRECTION_TTL_S = 300.0
"""Seconds a computed language direction is used before it is computed again from the store
(documents another process ingested count from then on)."""


class LanguageDirection:
    """The mean Japanese minus the mean English passage vector of one dense model
    (:func:`toward_other_language`), or ``None`` while either language has fewer than
    :data:`LANGUAGE_MIN_CHUNKS` chunks. Kept for :data:`LANGUAGE_DIRECTION_TTL_S` seconds, or
    until :meth:`forget`. Computed under a lock: questions arriving meanwhile wait for it rather
    than read the store too, and an ingestion that finishes meanwhile makes the next one
    compute again."""

    def __init__(self, store: VectorStore, vector: str) -> None:
        self._store, self._vector = store, vector
        self._value: list[float] | None = None
        self._at: float | None = None
        self._lock = threading.Lock()

    def get(self) -> list[float] | None:
        with self._lock:
            now = time.monotonic()
            if self._at is not None and now - self._at < LANGUAGE_DIRECTION_TTL_S:
                return self._value
            means = []
            for lang in ("ja", "en"):
                mean, n = self._store.language_centroid(self._vector, lang, limit=LANGUAGE_SAMPLE)
                if n < LANGUAGE_MIN_CHUNKS:
                    break
                means.append(mean)
            self._value = [a - b for a, b in zip(*means, strict=True)] if len(means) == 2 else None
            self._at = now
            return self._value

    def forget(self) -> None:
        with self._lock:
            self._at = None
