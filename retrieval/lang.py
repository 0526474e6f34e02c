"""Language of a text, by script: Japanese when kana or kanji make up a real share of it; and
the knowledge base's other language."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from retrieval.models import Lang

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
