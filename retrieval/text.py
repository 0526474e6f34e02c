"""Sentence splitting shared by chunking, extractive answers and the faithfulness check."""

from __future__ import annotations

import re
from collections.abc import Sequence

# A sentence ends at Japanese 。！？ (optionally followed by closing brackets), or at . ! ? followed
# by whitespace or glued to a capitalised word ("button.To return": extracted PDFs lose the space),
# or at a line break. Decimal points ("1.5 mm") and "e.g. " are not ends: the
# English branch needs whitespace after the mark and a non-abbreviation before it.
_END = re.compile(
    r"(?<=[。！？!?])[」』）)]*"
    r"|(?<=[^.\s]{2}\.)(?=\s)"
    r"|(?<=[a-z0-9)]\.)(?=[A-Z][a-z])"
    r"|\n+"
)
_ABBREV = re.compile(
    r"\b(?:e\.g|i\.e|etc|approx|no|vs|fig|p|pp|excl|incl|cf|ca|ext|tel|dept|mr|mrs|ms|dr)\.$",
    re.IGNORECASE,
)
"""Abbreviations that a sentence does not end at: "Price (JPY excl. tax)", "ext. 4021"."""
_REPLY = re.compile(r"(?:yes|no|はい|いいえ)[.!。！]?", re.IGNORECASE)
"""A reply word standing alone ("Yes.", 「いいえ。」): it belongs to the sentence after it, which
says what it answers; quoted alone it reads "Yes. [1]" under a question that asked who."""


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Start and end offsets of the sentences of ``text``, whitespace trimmed, empties dropped."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _END.finditer(text):
        end = match.end()
        if _ABBREV.search(text[start:end].rstrip()):
            continue
        spans.append((start, end))
        start = end
    spans.append((start, len(text)))
    out: list[tuple[int, int]] = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e <= s:
            continue
        if out and _REPLY.fullmatch(text[out[-1][0] : out[-1][1]]):
            s = out.pop()[0]
        out.append((s, e))
    return out


def sentence_joiner(lang: str) -> str:
    """What goes between two sentences quoted one after another: a space in English, nothing
    in Japanese."""
    return "" if lang == "ja" else " "


_LIST_ITEM = re.compile(r"\s*(?:\d{1,2}[.)．）]\s|[-*]\s|[•・])")


def joined(parts: Sequence[str], lang: str) -> str:
    """Quoted units one after another (:func:`sentence_joiner`), a list item (a step "4. ...", a
    bullet "- ...") on a line of its own: a Japanese answer read 「…閉じます。 [1]4. 「接続…」."""
    out = ""
    for i, part in enumerate(parts):
        if i:
            out += "\n" if _LIST_ITEM.match(part) else sentence_joiner(lang)
        out += part
    return out


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (Japanese and English), in order."""
    return [text[s:e] for s, e in sentence_spans(text)]


def sentence_pieces(text: str) -> list[str]:
    """``text`` cut at its sentence starts, whitespace kept: the pieces join back to ``text``
    exactly. What a splitter that glues its pieces together (llama-index's) needs: with
    :func:`split_sentences` a chunk would read "hold.The next" and table rows "(A4)Item"."""
    starts = [s for s, _ in sentence_spans(text)]
    if not starts:
        return [text] if text else []
    cuts = [0, *starts[1:], len(text)]
    return [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
