"""Word (through unstructured's ``partition_docx``) and PowerPoint (python-pptx, one section
per slide: unstructured would add NLP per text frame and tell us nothing more)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kb.ingest._formats.common import (
    LANGUAGES,
    Parsed,
    element_outline,
    github_slug,
    squash,
    table_rows_to_text,
)
from kb.ingest._formats.unstructured_setup import ensure_unstructured
from kb.retrieval.models import Location, Section

# Word stores built-in style names in English; python-docx reports them capitalised. Documents
# written by some Japanese tools carry localised names, so both are read.
_HEADING_STYLE = re.compile(r"^(?:heading|見出し)\s*([1-9])$", re.I)
_TITLE_STYLES = {"title", "表題"}
_SKIP_DOCX = frozenset({"PageBreak", "Image", "Header", "Footer"})


def parse_docx(path: Path, title: str | None) -> Parsed:
    """DOCX: sections cut at Heading 1-9 styles; the Title style names the document.

    ``title`` is the one in the file's properties (read by the zip check), preferred.
    """
    ensure_unstructured()
    from unstructured.partition.docx import partition_docx

    elements = partition_docx(filename=str(path), languages=LANGUAGES)
    styled_title: list[str] = []
    seen: dict[str, int] = {}

    def heading_of(element: Any) -> tuple[int, str | None] | None:
        style = str(getattr(element.metadata, "style_name", None) or "").strip()
        match = _HEADING_STYLE.match(style)
        if match:
            # The anchor of the heading in the source view, so a citation opens it there.
            return int(match.group(1)), github_slug(squash(element.text), seen) or None
        return None

    body = []
    for element in elements:
        style = str(getattr(element.metadata, "style_name", None) or "").strip().lower()
        if style in _TITLE_STYLES and not styled_title and squash(element.text):
            styled_title.append(squash(element.text))
            continue
        body.append(element)
    sections = element_outline(body, heading_of, skip=_SKIP_DOCX).finish()
    if not title:
        title = styled_title[0] if styled_title else None
    if not title:
        title = next(
            (s.location.heading_path[0] for s in sections if s.location.heading_path), None
        )
    return title, sections


def parse_pptx(path: Path, title: str | None) -> Parsed:
    """PPTX: one section per slide (``slide`` = 1-based number, heading path = slide title);
    text frames in reading order, tables as rows, speaker notes last."""
    from pptx import Presentation

    presentation = Presentation(str(path))
    sections: list[Section] = []
    first_title: str | None = None
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        slide_title = squash(title_shape.text_frame.text) if title_shape is not None else ""
        parts: list[str] = []
        shapes = [
            s for s in slide.shapes if title_shape is None or s.shape_id != title_shape.shape_id
        ]
        for shape in _reading_order(shapes):
            parts.extend(_shape_texts(shape))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                parts.append(f"Notes: {notes}")
        text = "\n\n".join(p for p in parts if p.strip()) or slide_title
        if not text:
            continue
        first_title = first_title or slide_title or None
        location = Location(heading_path=(slide_title,) if slide_title else (), slide=number)
        sections.append(Section(text=text, location=location))
    return title or first_title, sections


def _reading_order(shapes: list[Any]) -> list[Any]:
    return sorted(shapes, key=lambda s: (s.top or 0, s.left or 0))


def _shape_texts(shape: Any) -> list[str]:
    from pptx.shapes.group import GroupShape

    if isinstance(shape, GroupShape):
        return [t for inner in _reading_order(list(shape.shapes)) for t in _shape_texts(inner)]
    if getattr(shape, "has_table", False):
        rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
        return [table_rows_to_text(rows)]
    if getattr(shape, "has_text_frame", False):
        lines = [p.text.strip() for p in shape.text_frame.paragraphs]
        return ["\n".join(line for line in lines if line)]
    return []
