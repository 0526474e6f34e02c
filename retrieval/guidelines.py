"""Data-handling guidelines in software: mask personal data, refuse blocked topics.

Runs on every question (and feedback comment, escalation note) before it is stored, exported
or given to a model. Personal data becomes a typed placeholder:

=============  ======================================================================
``[EMAIL]``    e-mail addresses
``[CARD]``     13-19 digit numbers that pass the Luhn check (spaces or hyphens allowed)
``[MYNUMBER]`` 12-digit numbers (Japan's individual number; ``1234 5678 9012`` too)
``[PHONE]``    Japanese numbers (``03-1234-5678``, ``090 1234 5678``, ``0120-555-034``,
               ``(03)1234-5678``, ``09012345678``) and international ones (``+81 45 555 0340``)
``[POSTCODE]`` ``〒123-4567``, ``〒1234567``, ``123-4567``
``[NAME]``     names from the configured customer and employee lists
=============  ======================================================================

Matching runs on a per-character NFKC form of the text, so full-width digits and signs
(``０９０－１２３４－５６７８``, ``＠``) are found too, while the text outside a match is kept
as written. Blocked terms (unreleased product code names) do not mask: they refuse the request
(:class:`PolicyBlockedError`); the caller records the hit without the term itself.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kb.retrieval.errors import KBError
from kb.retrieval.settings import GuidelineSettings

_DASH_CHARS = r"\-‐‑‒–—―−ー"
_DASH = f"[{_DASH_CHARS}]"
_SEP = rf"(?:\s?{_DASH}\s?|\s)"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by single spaces or hyphens; Luhn decides.
_CARD = re.compile(rf"(?<![\d.,])\d(?:{_SEP}?\d){{12,18}}(?!\d)")
# Not part of a longer grouped number (a card that failed Luhn stays one unmasked number).
_MYNUMBER = re.compile(
    rf"(?<![\d.,])(?<!\d[{_DASH_CHARS}\s])\d{{4}}{_SEP}?\d{{4}}{_SEP}?\d{{4}}"
    rf"(?!\d|[{_DASH_CHARS}\s]\d)"
)
_PHONE_INTL = re.compile(rf"\+\d{{1,3}}(?:{_SEP}?\(?\d{{1,4}}\)?){{2,5}}(?!\d)")
_PHONE_JP = re.compile(
    rf"(?<![\d+])(?:\(0\d{{1,4}}\)\s?|0\d{{1,4}}{_SEP}?\(?)\d{{1,4}}\)?{_SEP}?\d{{3,4}}(?!\d)"
)
_POSTCODE = re.compile(
    rf"〒\s?\d{{3}}{_DASH}?\d{{4}}(?!\d)|(?<![\d{_DASH_CHARS}])\d{{3}}{_DASH}\d{{4}}(?![\d{_DASH_CHARS}])"
)


class PolicyBlockedError(KBError):
    """The text mentions a blocked term; the request is refused."""

    code = "POLICY_BLOCKED"


@dataclass(frozen=True, slots=True)
class Screened:
    """A text after the guidelines: ``text`` masked, ``redactions`` the placeholder kinds
    applied (sorted, unique), ``blocked`` the indexes of the blocked terms it mentioned."""

    text: str
    redactions: tuple[str, ...]
    blocked: tuple[int, ...]


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn checksum (payment card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(ch for ch in s if ch.isdigit())


def _term_pattern(term: str) -> str:
    """A literal term, whitespace-tolerant, with word edges only where the term has ASCII ends
    (Japanese names are followed by さん or particles without a space)."""
    norm = unicodedata.normalize("NFKC", term).strip()
    body = r"\s+".join(re.escape(part) for part in norm.split())
    left = r"(?<![0-9A-Za-z])" if norm[:1].isascii() and norm[:1].isalnum() else ""
    right = r"(?![0-9A-Za-z])" if norm[-1:].isascii() and norm[-1:].isalnum() else ""
    return f"{left}{body}{right}"


def _alternation(terms: Iterable[str]) -> re.Pattern[str] | None:
    # Longest first, so "Yamada Taro" wins over "Yamada".
    unique = sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True)
    if not unique:
        return None
    return re.compile("|".join(f"(?:{_term_pattern(t)})" for t in unique), re.IGNORECASE)


def _read_list(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


class _Normalised:
    """The text folded character by character with NFKC, mapping every folded position back."""

    def __init__(self, text: str) -> None:
        parts: list[str] = []
        owner: list[int] = []
        for i, ch in enumerate(text):
            folded = unicodedata.normalize("NFKC", ch)
            parts.append(folded)
            owner.extend([i] * len(folded))
        self.text = "".join(parts)
        self.owner = owner

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original ``[start, end)`` covering the folded ``[start, end)``."""
        return self.owner[start], self.owner[end - 1] + 1


class Guidelines:
    """Compiled guidelines. Build with :meth:`from_settings` (cached per configuration)."""

    def __init__(self, names: Sequence[str], blocked_terms: Sequence[str], message: str) -> None:
        self.blocked_terms = tuple(t.strip() for t in blocked_terms if t.strip())
        self.message = message
        self._names = _alternation(names)
        self._blocked = [re.compile(_term_pattern(t), re.IGNORECASE) for t in self.blocked_terms]

    @classmethod
    def from_settings(cls, settings: GuidelineSettings) -> Guidelines:
        """The guidelines for ``settings``, with the lists from its files added."""
        return _compiled(
            tuple(settings.customer_names) + tuple(settings.employee_names),
            tuple(settings.names_files),
            tuple(settings.blocked_terms),
            tuple(settings.blocked_terms_files),
            settings.blocked_message,
        )

    def screen(self, text: str) -> Screened:
        """Mask ``text`` and report the blocked terms it mentions (never raises)."""
        norm = _Normalised(text)
        blocked = tuple(i for i, rx in enumerate(self._blocked) if rx.search(norm.text))
        masked, kinds = self._mask(text, norm)
        return Screened(masked, kinds, blocked)

    def mask(self, text: str) -> str:
        """Only the masked text."""
        return self._mask(text, _Normalised(text))[0]

    def check(self, text: str) -> Screened:
        """:meth:`screen`, raising :class:`PolicyBlockedError` when a blocked term is present."""
        screened = self.screen(text)
        if screened.blocked:
            raise PolicyBlockedError(self.message)
        return screened

    def redact_blocked(self, text: str) -> str:
        """``text`` with blocked terms replaced by ``[BLOCKED]`` (for the policy-hit record)."""
        norm = _Normalised(text)
        spans = [(*m.span(), "BLOCKED") for rx in self._blocked for m in rx.finditer(norm.text)]
        return _splice(text, norm, spans)

    def _mask(self, text: str, norm: _Normalised) -> tuple[str, tuple[str, ...]]:
        folded = norm.text
        spans: list[tuple[int, int, str]] = []

        def free(a: int, b: int) -> bool:
            return all(b <= s or a >= e for s, e, _ in spans)

        def add(rx: re.Pattern[str] | None, label: str, ok: object = None) -> None:
            if rx is None:
                return
            for m in rx.finditer(folded):
                if free(*m.span()) and (ok is None or ok(m.group())):  # type: ignore[operator]
                    spans.append((m.start(), m.end(), label))

        add(_EMAIL, "EMAIL")
        add(_CARD, "CARD", lambda s: 13 <= len(_digits(s)) <= 19 and luhn_ok(_digits(s)))
        add(_MYNUMBER, "MYNUMBER")
        add(_PHONE_INTL, "PHONE", lambda s: 8 <= len(_digits(s)) <= 15)
        add(_PHONE_JP, "PHONE", lambda s: len(_digits(s)) in (10, 11))
        add(_POSTCODE, "POSTCODE")
        add(self._names, "NAME")
        kinds = tuple(sorted({label for _, _, label in spans}))
        return _splice(text, norm, spans), kinds


def _splice(text: str, norm: _Normalised, spans: list[tuple[int, int, str]]) -> str:
    """Replace each folded span with its ``[LABEL]``; a span overlapping an earlier one is
    dropped."""
    out: list[str] = []
    pos = 0
    for start, end, label in sorted(spans):
        a, b = norm.span(start, end)
        if a < pos:
            continue
        out.append(text[pos:a])
        out.append(f"[{label}]")
        pos = b
    out.append(text[pos:])
    return "".join(out)


@functools.lru_cache(maxsize=8)
def _compiled(
    names: tuple[str, ...],
    names_files: tuple[Path, ...],
    blocked: tuple[str, ...],
    blocked_files: tuple[Path, ...],
    message: str,
) -> Guidelines:
    all_names = list(names) + [n for f in names_files for n in _read_list(f)]
    all_blocked = list(blocked) + [t for f in blocked_files for t in _read_list(f)]
    return Guidelines(all_names, all_blocked, message)
