"""Spreadsheets: xlsx (openpyxl, read-only) and csv.

A sheet whose header has a question and an answer column (see ``ALIASES``) is a Q&A sheet:
one ``kind="qa"`` section per row with both, ``row`` = the spreadsheet row number (header =
row 1 in a CSV), optional ``category`` (heading path), ``groups`` (per-row access groups) and
``lang`` columns. Other xlsx sheets give one section per row, ``"Column: value; ..."``. A CSV
must be a Q&A sheet.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from kb.ingest._formats.common import Parsed, cell_text, row_text, squash
from kb.retrieval.errors import ParseError
from kb.retrieval.models import Location, Section

SUFFIXES = frozenset({".csv", ".xlsx"})
"""The files read here, whose rows can be Q&A entries."""

ALIASES: dict[str, frozenset[str]] = {
    "question": frozenset(
        "question|questions|q|question text|質問|質問内容|質問文|問い|問|設問|frage|fragen|"
        "pregunta|domanda|vraag".split("|")
    ),
    "answer": frozenset(
        "answer|answers|a|answer text|回答|回答内容|回答文|答え|解答|返答|antwort|antworten|"
        "respuesta|réponse|reponse|risposta|antwoord".split("|")
    ),
    "category": frozenset(
        "category|categories|topic|カテゴリ|カテゴリー|分類|区分|ジャンル|kategorie|categoria|"
        "categoría|catégorie".split("|")
    ),
    "groups": frozenset(
        "groups|group|access|access groups|acl|グループ|アクセス権|閲覧権限|権限|gruppen|gruppe|"
        "groupes".split("|")
    ),
    "lang": frozenset("lang|language|言語|sprache|langue|idioma".split("|")),
}
"""Header names (compared casefolded, punctuation-insensitive) of each Q&A column role."""

_HEADER_NOISE = re.compile(r"[\s_\-:：.()（）]+")
_GROUP_SPLIT = re.compile(r"[;,、；，\n]")
_DELIMITERS = (",", "\t", ";")


def qa_columns(header: Sequence[str]) -> dict[str, int]:
    """Column index of each Q&A role found in ``header`` (first match wins)."""
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = _HEADER_NOISE.sub(" ", name.casefold()).strip()
        for role, names in ALIASES.items():
            if key in names and role not in found:
                found[role] = index
    return found


def parse_groups(value: str) -> tuple[str, ...] | None:
    """``"sales; support"`` -> ``("sales", "support")``; blank -> ``None`` (inherit)."""
    groups = [g.strip() for g in _GROUP_SPLIT.split(value)]
    unique = tuple(dict.fromkeys(g for g in groups if g))
    return unique or None


def parse_csv(text: str) -> Parsed:
    """A Q&A CSV (comma, tab or semicolon separated).

    :raises ParseError: when the header lacks a question or answer column, naming them.
    """
    first_line = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first_line.count)
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ParseError(f"malformed CSV: {exc}") from exc
    rows = [
        (n, [c.strip() for c in r])
        for n, r in enumerate(records, start=1)
        if any(c.strip() for c in r)
    ]
    if not rows:
        raise ParseError("no text content")
    header = rows[0][1]
    columns = qa_columns(header)
    missing = [role for role in ("question", "answer") if role not in columns]
    if missing:
        shown = ", ".join(h for h in header if h)[:200]
        raise ParseError(
            f"CSV is not a Q&A sheet: missing column(s) {', '.join(missing)} (header: {shown})"
        )
    sections = _qa_sections(rows[1:], columns, sheet=None)
    if not sections:
        raise ParseError("Q&A CSV has no row with both a question and an answer")
    return None, sections


def parse_xlsx(path: Path, title: str | None) -> Parsed:
    """Every worksheet: a Q&A sheet by its header, else one section per data row."""
    from openpyxl import load_workbook

    workbook = load_workbook(str(path), read_only=True, data_only=True)
    sections: list[Section] = []
    try:
        for sheet in workbook.worksheets:
            sheet.reset_dimensions()  # some writers store a wrong <dimension>
            rows = [
                (number, [cell_text(v) for v in values])
                for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), 1)
                if any(v is not None and str(v).strip() for v in values)
            ]
            sections.extend(_sheet_sections(str(sheet.title), rows))
    finally:
        workbook.close()
    return title, sections


def _sheet_sections(sheet: str, rows: list[tuple[int, list[str]]]) -> list[Section]:
    if not rows:
        return []
    header_at = _header_index(rows)
    sections = [
        Section(text=" | ".join(c for c in cells if c), location=Location(sheet=sheet, row=n))
        for n, cells in rows[:header_at]
    ]
    header_row, header = rows[header_at]
    data = rows[header_at + 1 :]
    columns = qa_columns(header)
    if "question" in columns and "answer" in columns:
        return sections + _qa_sections(data, columns, sheet=sheet)
    if not data:
        text = " | ".join(c for c in header if c)
        return [*sections, Section(text=text, location=Location(sheet=sheet, row=header_row))]
    from openpyxl.utils import get_column_letter

    names = [h or get_column_letter(i + 1) for i, h in enumerate(header)]
    for number, cells in data:
        text = row_text(names, cells)
        if text:
            sections.append(Section(text=text, location=Location(sheet=sheet, row=number)))
    return sections


def _header_index(rows: Sequence[tuple[int, list[str]]]) -> int:
    """The header is the first row about as full as the fullest of the first ten (title rows
    such as "Price list 2026" above it stay text)."""
    filled = [sum(1 for c in cells if c) for _, cells in rows[:10]]
    need = min(2, max(filled))
    return next(i for i, count in enumerate(filled) if count >= need)


def _qa_sections(
    rows: Iterable[tuple[int, list[str]]], columns: dict[str, int], *, sheet: str | None
) -> list[Section]:
    def get(cells: list[str], role: str) -> str:
        index = columns.get(role)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    sections: list[Section] = []
    for number, cells in rows:
        question, answer = get(cells, "question"), get(cells, "answer")
        if not question or not answer:
            continue
        category = squash(get(cells, "category"))
        location = Location(heading_path=(category,) if category else (), sheet=sheet, row=number)
        sections.append(
            Section(
                text=answer,
                location=location,
                kind="qa",
                question=squash(question),
                groups=parse_groups(get(cells, "groups")),
            )
        )
    return sections
