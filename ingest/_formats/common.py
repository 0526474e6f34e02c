"""Pieces shared by the format parsers: the heading outline, table text, line joining, slugs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kb.retrieval.models import Location, Section

Parsed = tuple[str | None, list[Section]]
"""What a format parser returns: a title when the file declares one, and its sections."""

HeadingFn = Callable[[Any], "tuple[int, str | None] | None"]
"""Tells whether an unstructured element is a real heading: ``(level, anchor)`` or ``None``."""
StepFn = Callable[[Any], "int | None"]
"""A list item's number in its ordered list (``<ol>``, "1." in Markdown), or ``None``."""

LANGUAGES = ["jpn", "eng"]
"""Passed to every unstructured partitioner: its own detection tags short Japanese as Chinese."""

_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_BULLET = re.compile(r"^\s*(?:[•・●○■□◆◇▪‣∙*\-–]|\(?\d{1,2}[.)]|[①-⑳])\s*")
_SLUG_DROP = re.compile(r"[^\w\- ]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")


def squash(text: str) -> str:
    """``text`` on one line with runs of whitespace made single spaces."""
    return " ".join(text.split())


def github_slug(text: str, seen: dict[str, int]) -> str:
    """GitHub's heading anchor: lowercase, punctuation dropped, spaces to ``-``, CJK kept.

    ``seen`` counts slugs already given in this document, so a repeated heading gets ``-1``,
    ``-2``... as on GitHub.
    """
    base = _SLUG_DROP.sub("", text.strip().lower()).replace(" ", "-")
    count = seen.get(base, 0)
    seen[base] = count + 1
    return base if count == 0 else f"{base}-{count}"


def join_lines(lines: Iterable[str]) -> str:
    """Join the visual lines of one paragraph: no space between Japanese characters, a space
    between words, a hyphen at a line end dropped before a lowercase word; bullets start a line."""
    out = ""
    for raw in lines:
        line = _SPACES.sub(" ", raw).strip()
        if not line:
            continue
        if not out:
            out = line
        elif _BULLET.match(line) and not _BULLET.fullmatch(line):
            out += "\n" + line
        elif _CJK.match(out[-1]) and _CJK.match(line[0]):
            out += line
        elif out.endswith("-") and len(out) > 1 and out[-2].isalpha() and line[0].islower():
            out = out[:-1] + line
        elif out.endswith("-"):
            out += line
        else:
            out += " " + line
    return out


def cell_text(value: object) -> str:
    """Readable text of one spreadsheet or table cell (``12000`` not ``12000.0``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        text = str(isoformat())
        return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")
    return str(value).strip()


def row_text(header: Sequence[str], cells: Sequence[str]) -> str:
    """One table row as ``"Column: value; Column: value"``, skipping empty cells."""
    parts: list[str] = []
    for i, value in enumerate(cells):
        if not value:
            continue
        name = header[i] if i < len(header) else ""
        parts.append(f"{name}: {value}" if name else value)
    return "; ".join(parts)


def table_rows_to_text(rows: Sequence[Sequence[str]]) -> str:
    """A table as text: each row under the header reads ``"Column: value; ..."``, one per
    line; a table without a usable header (one row, one column) reads ``"a | b"``."""
    rows = [[squash(c) for c in row] for row in rows if any(c.strip() for c in row)]
    if not rows:
        return ""
    header = rows[0]
    if len(rows) < 2 or len(header) < 2 or sum(1 for h in header if h) < 2:
        return "\n".join(" | ".join(c for c in row if c) for row in rows)
    return "\n".join(text for text in (row_text(header, row) for row in rows[1:]) if text)


def table_html_to_text(html: str) -> str:
    """Readable text of an HTML ``<table>`` (as in unstructured's ``text_as_html``)."""
    from lxml import etree

    root = etree.HTML(html)
    if root is None:
        return ""
    rows: list[list[str]] = []
    for tr in root.iter("tr"):
        rows.append(["".join(cell.itertext()) for cell in tr if cell.tag in ("td", "th")])
    return table_rows_to_text(rows)


@dataclass(slots=True)
class _Heading:
    level: int
    text: str
    anchor: str | None
    page: int | None
    used: bool = False


class Outline:
    """Collects body text under the current heading path and cuts a section at each heading
    and at each page change.

    A heading with nothing under it (no text, no deeper heading) becomes a section of its own,
    so no words of the source are lost when a parser takes a line for a heading.
    """

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._path: list[_Heading] = []
        self._body: list[str] = []
        self._tight = False
        self._page: int | None = None

    def heading(
        self, level: int, text: str, *, anchor: str | None = None, page: int | None = None
    ) -> None:
        """Open a heading of ``level`` (1 = top); deeper and equal headings are closed."""
        text = squash(text)
        if not text:
            return
        self._flush()
        if page is not None:
            self._page = page
        while self._path and self._path[-1].level >= level:
            self._close(self._path.pop())
        if self._path:
            self._path[-1].used = True
        self._path.append(_Heading(level, text, anchor, self._page))

    def text(self, text: str, *, page: int | None = None, tight: bool = False) -> None:
        """Add a paragraph; ``tight`` ones (list items) join the previous tight one by a newline."""
        text = text.strip()
        if not text:
            return
        if page is not None and page != self._page:
            self._flush()
            self._page = page
        if tight and self._tight and self._body:
            self._body[-1] += "\n" + text
        else:
            self._body.append(text)
        self._tight = tight
        if self._path:
            self._path[-1].used = True

    def finish(self) -> list[Section]:
        """Close everything and return the sections in document order."""
        self._flush()
        while self._path:
            self._close(self._path.pop())
        return self.sections

    def _close(self, heading: _Heading) -> None:
        if heading.used:
            return
        path = (*(h.text for h in self._path), heading.text)
        location = Location(heading_path=path, page=heading.page, anchor=heading.anchor)
        self.sections.append(Section(text=heading.text, location=location))

    def _flush(self) -> None:
        body = "\n\n".join(self._body)
        self._body, self._tight = [], False
        if not body.strip():
            return
        anchor = self._path[-1].anchor if self._path else None
        location = Location(
            heading_path=tuple(h.text for h in self._path), page=self._page, anchor=anchor
        )
        self.sections.append(Section(text=body, location=location))


def element_outline(
    elements: Iterable[Any],
    heading_of: HeadingFn,
    *,
    skip: frozenset[str] = frozenset({"PageBreak", "Image"}),
    step_of: StepFn | None = None,
) -> Outline:
    """Feed unstructured ``elements`` into an :class:`Outline`.

    ``heading_of(element)`` returns ``(level, anchor)`` for a real heading, else ``None``: the
    element is then body text (Japanese lines typed ``Title`` by English heuristics stay text).
    Tables become ``"Column: value"`` rows from ``text_as_html``; list items get a ``- `` bullet,
    or their number (``"1. "``) where ``step_of`` finds them in an ordered list: unstructured
    keeps the items' text, not their numbers, and a procedure is told by its numbered steps
    (``retrieval/shape.py``).
    """
    outline = Outline()
    for element in elements:
        category = str(getattr(element, "category", ""))
        text = str(getattr(element, "text", "") or "")
        if category in skip or not text.strip():
            continue
        heading = heading_of(element)
        if heading is not None:
            outline.heading(heading[0], text, anchor=heading[1])
        elif category == "Table":
            html = getattr(getattr(element, "metadata", None), "text_as_html", None)
            outline.text(table_html_to_text(html) if html else text)
        elif category == "ListItem":
            item = text.strip()
            step = step_of(element) if step_of is not None else None
            if step is not None:
                item = f"{step}. {item}"
            elif not _BULLET.match(item):
                item = f"- {item}"
            outline.text(item, tight=True)
        else:
            outline.text(text)
    return outline
