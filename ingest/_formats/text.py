"""Bytes to text for the text formats (txt, md, html, csv), and plain-text parsing.

Decoding order: BOM, strict UTF-8, a strict Shift_JIS (cp932) and EUC-JP trial, UTF-8 with
rare damage, cp1252 when it reads as accented Latin words, then charset-normalizer's guess.
Every result must look like text (no control characters, no private-use code points); between
Shift_JIS and EUC-JP the reading with fewer half-width katakana wins (the mark of EUC-JP read
as Shift_JIS). Anything else is "not a text file (binary content)".
"""

from __future__ import annotations

import codecs
import re

from kb.ingest._formats.common import Parsed
from kb.retrieval.errors import ParseError
from kb.retrieval.models import Section

BINARY_MESSAGE = "not a text file (binary content)"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_DUBIOUS = re.compile(r"[\ue000-\uf8ff\ufffd\U000f0000-\U0010ffff]")
_HALFWIDTH_KANA = re.compile(r"[\uff61-\uff9f]")
_KANA = re.compile(r"[\u3041-\u30ff]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.\-]+)""", re.I)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\u3000]*\n+")
# Labels browsers treat as supersets (WHATWG Encoding Standard).
_LATIN_CODECS = frozenset(
    "cp1250 cp1252 cp1254 cp1257 latin_1 iso8859_1 iso8859_2 iso8859_9 iso8859_13 iso8859_15 "
    "mac_roman mac_latin2".split()
)
_LABELS = {"windows-31j": "cp932", "x-sjis": "cp932", "sjis": "cp932", "x-euc-jp": "euc_jp"}
_CODEC_ALIASES = {"shift_jis": "cp932", "iso8859_1": "cp1252", "ascii": "cp1252"}


def decode_text(data: bytes) -> str:
    """Decode the bytes of a text file (newlines normalised to ``\\n``).

    :raises ParseError: ``not a text file (binary content)`` when no encoding gives sensible text.
    """
    text = _decode(data)
    if text is None:
        raise ParseError(BINARY_MESSAGE)
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def decode_html(data: bytes) -> str:
    """Decode an HTML file: its ``<meta charset>`` when it declares one that works, else
    :func:`decode_text`."""
    match = _META_CHARSET.search(data[:4096])
    if match and not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            label = match.group(1).decode("ascii").lower()
            label = _LABELS.get(label, label)
            name = codecs.lookup(label).name.replace("-", "_")
            text = data.decode(_CODEC_ALIASES.get(name, name))
        except (LookupError, UnicodeDecodeError):
            pass
        else:
            if b"\x00" not in data and _looks_like_text(text):
                return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    return decode_text(data)


def parse_txt(text: str) -> Parsed:
    """Plain text: one section per paragraph (blocks separated by blank lines)."""
    sections = [
        Section(text="\n".join(line.rstrip() for line in block.strip("\n").split("\n")))
        for block in _PARAGRAPH_BREAK.split(text)
        if block.strip()
    ]
    return None, sections


def _decode(data: bytes) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        return _try(data[3:], "utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _try(data, "utf-16")
    if b"\x00" in data:
        return None
    text = _try(data, "utf-8")
    if text is not None:
        return text

    japanese = [t for t in (_try(data, "cp932"), _try(data, "euc_jp")) if t is not None]
    # EUC-JP read as Shift_JIS turns into half-width katakana: fewer of them wins.
    best_ja = max(
        japanese, key=lambda t: (_score(t), -len(_HALFWIDTH_KANA.findall(t))), default=None
    )
    if best_ja is not None and _KANA.search(best_ja) and _score(best_ja) >= 0.98:
        return best_ja

    damaged = _damaged_utf8(data)
    if damaged is not None:
        return damaged

    western = _try(data, "cp1252")
    if western is not None and _looks_western(western):
        return western

    guess, guess_codec = _charset_normalizer_guess(data)
    if best_ja is not None and _score(best_ja) >= 0.98:
        # Kanji without kana: charset-normalizer often says Chinese or Korean; a Japanese
        # knowledge base takes Japanese unless the guess is a Latin code page.
        if guess is None or guess_codec not in _LATIN_CODECS:
            return best_ja
    return guess


def _try(data: bytes, codec: str) -> str | None:
    try:
        text = data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None
    return text if _looks_like_text(text) else None


def _looks_like_text(text: str) -> bool:
    """No more than a trace of control characters (form feeds and tabs are fine)."""
    return len(_CONTROL.findall(text)) <= max(2, len(text) // 1000)


def _score(text: str) -> float:
    """Share of characters that are plausible in a real document (1.0 = all)."""
    if not text:
        return 0.0
    return 1.0 - len(_DUBIOUS.findall(text)) / len(text)


def _damaged_utf8(data: bytes) -> str | None:
    """UTF-8 with a few broken bytes (a truncated character): accepted when the valid
    non-ASCII characters outnumber the damage ten to one."""
    text = data.decode("utf-8", errors="replace")
    damage = text.count("\ufffd")
    if damage == 0 or len(_NON_ASCII.findall(text)) - damage < 10 * damage:
        return None
    return text if _looks_like_text(text) else None


def _looks_western(text: str) -> bool:
    """Accented letters sprinkled in Latin words ("Größe", "café"), not long runs of high
    bytes as any double-byte encoding read as cp1252 gives."""
    runs = _NON_ASCII_RUN.findall(text)
    return bool(runs) and all(len(run) <= 2 for run in runs) and len(runs) * 3 <= len(text)


def _charset_normalizer_guess(data: bytes) -> tuple[str | None, str | None]:
    from charset_normalizer import from_bytes

    match = from_bytes(data).best()
    if match is None:
        return None, None
    codec = codecs.lookup(match.encoding).name.replace("-", "_")
    if codec in _LATIN_CODECS and _try(data, "cp1252") is not None:
        # Short Western text fits several Latin code pages equally; cp1252 is the usual one.
        codec = "cp1252"
    text = _try(data, codec)
    if text is None or _score(text) < 0.98:
        return None, codec
    return text, codec
