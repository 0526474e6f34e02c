"""PDF text layers with pdfminer.six, the engine under unstructured's ``fast`` strategy.

``unstructured.partition.pdf`` cannot be imported here: it needs ``unstructured_inference``
(and with it timm/torchvision), which the project does not install. Reading pdfminer's layout
directly is also better for headings: a line is a heading when its font is clearly larger than
the body font (the size with the most characters), with one level per heading size. Lines
repeated at the top or bottom of most pages (running headers, page numbers) are dropped.

The pages are read with pdfplumber, whose layout is pdfminer's: each page is laid out once, for
its text lines and for its ruled tables, which are read row by row as
``"Column: value; Column: value"``, like tables in the other formats: pdfminer alone returns a
table column by column, so "Capacity" and "550 sheets" end up lines apart. The lines inside a
table are replaced by its rows, placed where the table stands on the page.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.ingest._formats.common import Outline, Parsed, join_lines, squash, table_rows_to_text
from kb.retrieval.errors import ParseError

logger = logging.getLogger(__name__)

NO_TEXT_MESSAGE = "no text layer (needs OCR)"

_CID = re.compile(r"\(cid:\d+\)")
_DIGITS = re.compile(r"\d+")
_SENTENCE_END = ("。", ".", ",", "、", ";", ":", "：")
_APP_PREFIX = re.compile(r"^Microsoft (?:Word|PowerPoint|Excel) - ")
_FILE_NAME = re.compile(r"^\S+\.(?:docx?|pptx?|xlsx?|rtf|txt|indd|pdf)$", re.I)
_GENERIC_TITLES = {"untitled", "無題", "slide 1", "document"}
_MAX_HEADING_CHARS = 120


@dataclass(slots=True)
class _Line:
    page: int
    box: int
    text: str
    size: float
    top: float
    """Top edge in PDF coordinates (from the bottom of the page)."""
    x: float = 0.0
    """Horizontal centre."""
    heading_level: int = 0
    table: bool = False
    """The rows of a table (``text`` holds one row a line); never a heading."""


@dataclass(frozen=True, slots=True)
class _Table:
    """A ruled table's box in PDF coordinates (``bottom < top``) and its rows as text."""

    page: int
    x0: float
    bottom: float
    x1: float
    top: float
    text: str

    def holds(self, line: _Line) -> bool:
        """The line's top edge and centre lie inside the table."""
        return self.x0 <= line.x <= self.x1 and self.bottom <= line.top <= self.top + 1.0


def parse_pdf(path: Path) -> Parsed:
    """Sections per page (``page`` 1-based) cut at detected headings.

    :raises ParseError: ``encrypted PDF: ...``, ``corrupt PDF: ...``, or
        ``no text layer (needs OCR)`` for a scan or an image-only PDF.
    """
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfplumber.pdf import PDF
    from pdfplumber.utils.exceptions import PdfminerException

    with path.open("rb") as fh:
        try:
            pdf = PDF(fh, laparams={"all_texts": True})
        except PdfminerException as wrapped:
            exc = (
                wrapped.args[0]
                if wrapped.args and isinstance(wrapped.args[0], Exception)
                else wrapped
            )
            if isinstance(exc, PDFPasswordIncorrect):
                raise ParseError("encrypted PDF: a password is required to open it") from exc
            if isinstance(exc, PDFEncryptionError):
                raise ParseError(f"encrypted PDF: {_reason(exc)}") from exc
            raise ParseError(f"corrupt PDF: {_reason(exc)}") from exc
        except Exception as exc:
            raise ParseError(f"corrupt PDF: {_reason(exc)}") from exc
        with pdf:
            lines, tables, pages = _read_pages(pdf)
            title = _info_title(pdf.doc)
    if pages == 0:
        raise ParseError("corrupt PDF: no pages")
    lines = _drop_running_lines(lines, pages)
    if not lines:
        raise ParseError(NO_TEXT_MESSAGE)
    lines = [ln for ln in lines if not any(t.holds(ln) for t in tables.get(ln.page, ()))]
    if lines:
        _mark_headings(lines)
    lines = _with_tables(lines, tables)
    outline = Outline()
    for (page, _box), run in _runs(lines):
        level = run[0].heading_level
        if run[0].table:
            outline.text("\n".join(line.text for line in run), page=page)
            continue
        text = join_lines(line.text for line in run)
        if level:
            outline.heading(level, text, page=page)
        else:
            outline.text(text, page=page)
    if title is None:
        title = next((squash(line.text) for line in lines if line.heading_level), None)
    return title, outline.finish()


def _read_pages(pdf: Any) -> tuple[list[_Line], dict[int, list[_Table]], int]:
    """Every page's text lines and ruled tables, from one layout pass per page (pdfplumber
    reads its tables off the same pdfminer layout). :returns: lines, tables by page, pages."""
    from pdfminer.pdfpage import PDFPage
    from pdfplumber.page import Page

    lines: list[_Line] = []
    tables: dict[int, list[_Table]] = defaultdict(list)
    pages = 0
    doctop = 0.0
    try:
        for number, page_obj in enumerate(PDFPage.create_pages(pdf.doc), start=1):
            pages = number
            page = Page(pdf, page_obj, page_number=number, initial_doctop=doctop)
            doctop += float(page.height)
            try:
                layout = page.layout
            except Exception as exc:  # one bad page (broken stream, font) must not sink the rest
                logger.warning("skipping unreadable PDF page %d: %s", number, _reason(exc))
                continue
            try:
                lines.extend(_page_lines(layout, number))
                tables[number] = _page_tables(page, number)
            finally:
                page.close()  # pdfplumber caches every page's objects until closed
    except Exception as exc:
        if not lines:
            raise ParseError(f"corrupt PDF: {_reason(exc)}") from exc
        logger.warning("PDF page tree broken after page %d: %s", pages, _reason(exc))
    return lines, tables, pages


def _page_lines(layout: Any, page: int) -> Iterator[_Line]:
    from pdfminer.layout import LTChar, LTFigure, LTTextBox, LTTextLine

    box = 0

    def walk(container: Any) -> Iterator[tuple[int, Any]]:
        nonlocal box
        for item in container:
            if isinstance(item, LTTextBox):
                box += 1
                for line in item:
                    if isinstance(line, LTTextLine):
                        yield box, line
            elif isinstance(item, LTTextLine):
                box += 1
                yield box, item
            elif isinstance(item, LTFigure):
                yield from walk(item)

    for box_id, line in walk(layout):
        text = squash(_CID.sub("", line.get_text()))
        if not text:
            continue
        sizes: Counter[float] = Counter()
        for char in line:
            if isinstance(char, LTChar) and char.get_text().strip():
                sizes[round(char.size * 2) / 2] += 1
        size = sizes.most_common(1)[0][0] if sizes else 0.0
        yield _Line(
            page=page,
            box=box_id,
            text=text,
            size=size,
            top=float(line.y1),
            x=(float(line.x0) + float(line.x1)) / 2,
        )


def _page_tables(page: Any, number: int) -> list[_Table]:
    """The page's ruled tables of at least two rows and two columns. A page whose tables
    cannot be read costs only its tables (its text is still read as lines)."""
    found: list[_Table] = []
    try:
        height = float(page.bbox[3])
        for table in page.find_tables():
            rows = [[_cell(c) for c in row] for row in table.extract()]
            if len(rows) < 2 or max(len(r) for r in rows) < 2:
                continue
            text = table_rows_to_text(rows)
            x0, top, x1, bottom = (float(v) for v in table.bbox)
            if text:
                found.append(_Table(number, x0, height - bottom, x1, height - top, text))
    except Exception as exc:
        logger.warning("no tables read on PDF page %d: %s", number, _reason(exc))
    return found


def _cell(value: str | None) -> str:
    """A table cell's lines joined as a paragraph (pdfplumber keeps the wrapped lines)."""
    return join_lines(value.splitlines()) if value else ""


def _with_tables(lines: list[_Line], tables: dict[int, list[_Table]]) -> list[_Line]:
    """``lines`` with each table's rows as one more line, placed before the first line of its
    page that starts below the table (at the end of the page when none does)."""
    if not tables:
        return lines
    out: list[_Line] = []
    pending: dict[int, list[_Table]] = {
        p: sorted(ts, key=lambda t: -t.top) for p, ts in tables.items()
    }
    box = -1

    def table_line(table: _Table) -> _Line:
        nonlocal box
        box -= 1
        return _Line(page=table.page, box=box, text=table.text, size=0.0, top=table.top, table=True)

    def flush(page: int, below: float | None) -> None:
        queue = pending.get(page, [])
        while queue and (below is None or queue[0].top >= below):
            out.append(table_line(queue.pop(0)))

    for line in lines:  # in page order
        for page in sorted(p for p in pending if p < line.page):
            flush(page, None)
        flush(line.page, line.top)
        out.append(line)
    for page in sorted(pending):
        flush(page, None)
    return out


def _drop_running_lines(lines: list[_Line], pages: int) -> list[_Line]:
    """Drop running headers/footers: the same line (digits aside) in the top or bottom two
    lines of at least 60% of the pages (and at least 3)."""
    if pages < 3:
        return lines
    by_page: dict[int, list[_Line]] = defaultdict(list)
    for line in lines:
        by_page[line.page].append(line)
    edge: dict[str, set[int]] = defaultdict(set)
    edge_lines: set[int] = set()
    for page, page_lines in by_page.items():
        ordered = sorted(page_lines, key=lambda ln: -ln.top)
        for line in ordered[:2] + ordered[-2:]:
            edge[_DIGITS.sub("#", line.text.lower())].add(page)
            edge_lines.add(id(line))
    needed = max(3, math.ceil(0.6 * pages))
    running = {key for key, seen in edge.items() if len(seen) >= needed}
    if not running:
        return lines
    return [
        ln
        for ln in lines
        if not (id(ln) in edge_lines and _DIGITS.sub("#", ln.text.lower()) in running)
    ]


def _mark_headings(lines: list[_Line]) -> None:
    weight: Counter[float] = Counter()
    for line in lines:
        weight[line.size] += len(line.text)
    body = weight.most_common(1)[0][0]
    margin = max(1.0, 0.12 * body)
    candidates = [
        line
        for line in lines
        if line.size - body >= margin
        and len(line.text) <= _MAX_HEADING_CHARS
        and any(ch.isalpha() for ch in line.text)
        and not line.text.endswith(_SENTENCE_END)
    ]
    levels = {
        size: i + 1 for i, size in enumerate(sorted({ln.size for ln in candidates}, reverse=True))
    }
    for line in candidates:
        line.heading_level = min(levels[line.size], 6)


def _runs(lines: list[_Line]) -> Iterator[tuple[tuple[int, int], list[_Line]]]:
    """Consecutive lines of one text box with the same heading level (0 = body)."""
    run: list[_Line] = []
    for line in lines:
        if run and (
            (line.page, line.box) != (run[0].page, run[0].box)
            or line.heading_level != run[0].heading_level
        ):
            yield (run[0].page, run[0].box), run
            run = []
        run.append(line)
    if run:
        yield (run[0].page, run[0].box), run


def _info_title(document: Any) -> str | None:
    from pdfminer.pdftypes import resolve1
    from pdfminer.utils import decode_text

    try:
        for info in document.info:
            raw = resolve1(info.get("Title"))
            if isinstance(raw, bytes):
                raw = decode_text(raw)
            if isinstance(raw, str):
                title = _APP_PREFIX.sub("", squash(raw.replace("\x00", "")))
                if title and title.lower() not in _GENERIC_TITLES and not _FILE_NAME.match(title):
                    return title
    except Exception:  # a damaged Info dictionary only costs the title
        logger.debug("unreadable PDF Info title", exc_info=True)
    return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
