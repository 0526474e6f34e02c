"""Language of a text, by script: Japanese when kana or kanji make up a real share of it; and
the knowledge base's other language."""

from __future__ import annotations

import re

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
