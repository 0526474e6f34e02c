"""One source file to a :class:`ParsedDocument`: text, sections with locations, title, language.

Supported: Markdown, HTML, PDF (text layer), DOCX, PPTX, XLSX, CSV (Q&A sheets), plain text.
Everything runs offline. Every failure is a :class:`ParseError` whose ``detail`` says what is
wrong with the file; no other exception escapes :func:`parse_file`. Checks made before any
parser touches the file: suffix, size, empty file, content matching the suffix (magic bytes,
the main part of an Office zip), encryption, and the decompressed size of Office zips.

Which library reads what (and why) is in ``ingest/_formats/``: unstructured for Markdown, HTML
and DOCX; pdfminer.six for PDF; python-pptx, openpyxl and the standard library elsewhere.
"""

from __future__ import annotations

import logging
import re
import warnings
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

from kb.ingest._formats.sheets import SUFFIXES as SHEETS
from kb.retrieval.errors import ParseError
from kb.retrieval.lang import detect_lang
from kb.retrieval.models import ParsedDocument, Section
from kb.retrieval.settings import IngestSettings

logger = logging.getLogger(__name__)

PARSERS_VERSION = 6
"""Bump when a parser or the chunker reads the same file differently (2: PDF tables row by row;
3: chunks keep the spaces and line breaks between sentences; 4: a sentence ends after a word
that ends like an abbreviation, "setup." or "help.", and not after "excl."; 5: a reply word,
"Yes." or 「はい。」, is one sentence with the statement after it; 6: the items of an HTML or
Markdown ordered list keep their numbers, "1. ", not a "- " bullet). ``kb eval``
re-indexes its folder datasets on a bump; a deployment runs ``kb ingest --reindex``."""

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".txt"}
)
"""Lower-case file suffixes :func:`parse_file` accepts."""
SHEET_SUFFIXES: frozenset[str] = SHEETS
"""Those whose rows can be Q&A entries (spreadsheets, :mod:`ingest._formats.sheets`)."""

_FORMAT_NAMES = {
    ".md": "Markdown",
    ".markdown": "Markdown",
    ".html": "HTML",
    ".htm": "HTML",
    ".pdf": "PDF",
    ".docx": "DOCX",
    ".pptx": "PPTX",
    ".xlsx": "XLSX",
    ".csv": "CSV",
    ".txt": "text",
}
# What a damaged zip or XML part raises inside python-docx, python-pptx and openpyxl.
_CORRUPTION: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    KeyError,
    UnicodeDecodeError,
    NotImplementedError,
    SyntaxError,  # xml.etree's ParseError and lxml's XMLSyntaxError derive from it
)
_TEXT_SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm", ".csv", ".txt"})
_OFFICE_SUFFIXES = frozenset({".docx", ".pptx", ".xlsx"})


def parse_file(
    path: Path,
    *,
    max_bytes: int,
    limits: IngestSettings | None = None,
    max_unzipped_bytes: int | None = None,
) -> ParsedDocument:
    """Parse one file by its suffix.

    :param path: the file; its suffix (any case) picks the parser, see ``SUPPORTED_SUFFIXES``.
    :param max_bytes: files larger than this are refused before being read.
    :param limits: the per-file limits (elements, characters, archive parts, compression
        ratio, HTML depth; issue 20); the defaults when not given. The wall-time limit is the
        worker process's (:mod:`ingest.worker`).
    :param max_unzipped_bytes: overrides ``limits.max_unzipped_bytes``: Office files (zip
        archives) whose parts add up to more than this uncompressed are refused before being
        opened (zip bombs).
    :returns: the document; ``text`` is the section texts joined by blank lines and each
        section's ``start`` is its offset in it; ``title`` comes from the file's metadata, its
        first heading, or the file name; ``lang`` from :func:`retrieval.lang.detect_lang`.
    :raises ParseError: with a ``detail`` naming the problem, e.g. ``empty file``,
        ``file too large: N bytes > limit M``, ``unsupported file type .xyz``,
        ``not a text file (binary content)``, ``not a valid DOCX file (looks like PDF)``,
        ``archive expands past limit: ...``, ``encrypted PDF: ...``, ``corrupt PDF: ...``,
        ``no text layer (needs OCR)``, ``CSV is not a Q&A sheet: missing column(s) ...``,
        ``too many paragraphs: more than N, over the limit N (raise it with
        KB_INGEST__MAX_ELEMENTS)``.
    """
    limits = limits or IngestSettings()
    if max_unzipped_bytes is not None:
        limits = limits.model_copy(update={"max_unzipped_bytes": max_unzipped_bytes})
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ParseError(f"unsupported file type {suffix or '(no suffix)'}")
    try:
        if not path.is_file():
            raise ParseError("not a regular file" if path.exists() else "file not found")
        size = path.stat().st_size
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}") from exc
    if size == 0:
        raise ParseError("empty file")
    if size > max_bytes:
        raise ParseError(f"file too large: {size} bytes > limit {max_bytes}")

    fmt = _FORMAT_NAMES[suffix]
    # Library warnings (openpyxl, pdfminer...) are logged, never raised: under
    # ``-W error`` a harmless one would otherwise fail the file.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            title, sections = _parse(path, suffix, fmt, limits)
        except ParseError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if suffix in _OFFICE_SUFFIXES and isinstance(exc, _CORRUPTION):
                raise ParseError(f"corrupt {fmt} file: {reason}") from exc
            logger.warning("unexpected error parsing %s", path, exc_info=True)
            raise ParseError(f"could not parse {fmt} file: {reason}") from exc
        finally:
            for warning in caught:
                logger.debug("%s: %s", path.name, warning.message)
    return _assemble(title, sections, fallback_title=path.stem, limits=limits)


def _parse(
    path: Path, suffix: str, fmt: str, limits: IngestSettings
) -> tuple[str | None, list[Section]]:
    from kb.ingest._formats import sniff

    if suffix in _TEXT_SUFFIXES:
        from kb.ingest._formats import text as textfmt

        data = path.read_bytes()
        kind = sniff.magic_kind(data[:64])
        if kind is not None:
            raise ParseError(f"not a text file (looks like {sniff.describe(path, data[:2048])})")
        if suffix in (".html", ".htm"):
            from kb.ingest._formats.markup import parse_html

            decoded = textfmt.decode_html(data)
            _check_chars(len(decoded), limits)
            return parse_html(decoded, max_depth=limits.max_html_depth)
        decoded = textfmt.decode_text(data)
        _check_chars(len(decoded), limits)
        if suffix in (".md", ".markdown"):
            from kb.ingest._formats.markup import parse_markdown

            return parse_markdown(decoded)
        if suffix == ".csv":
            from kb.ingest._formats.sheets import parse_csv

            return parse_csv(decoded)
        return textfmt.parse_txt(decoded)

    if suffix == ".pdf":
        from kb.ingest._formats.pdf import parse_pdf

        with path.open("rb") as fh:
            head = fh.read(2048)
        if sniff.magic_kind(head, anywhere=True) != "PDF":
            raise ParseError(f"not a valid PDF file (looks like {sniff.describe(path, head)})")
        return parse_pdf(path)

    assert suffix in _OFFICE_SUFFIXES
    title = sniff.check_office(path, fmt, limits=limits)
    if suffix == ".docx":
        from kb.ingest._formats.office import parse_docx

        return parse_docx(path, title)
    if suffix == ".pptx":
        from kb.ingest._formats.office import parse_pptx

        return parse_pptx(path, title)
    from kb.ingest._formats.sheets import parse_xlsx

    return parse_xlsx(path, title)


def _check_chars(n: int, limits: IngestSettings) -> None:
    if n > limits.max_chars:
        from kb.ingest._formats.sniff import limit_error

        raise limit_error(f"too much text: {n} characters", limits.max_chars, "MAX_CHARS")


# Text hygiene (issue 20): control characters (NUL first: PostgreSQL refuses it, SQLite stores
# it) and U+FFFD, the mark of bytes that were not valid in their encoding, are never stored.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_REPLACEMENT = "\ufffd"
_WHITESPACE_CONTROLS = {0x0B: " ", 0x0C: " ", 0x0D: "\n"}


class _Hygiene:
    """Cleans every text of one document and counts what it removed."""

    def __init__(self) -> None:
        self.controls = 0
        self.invalid = 0

    def __call__(self, text: str) -> str:
        if _REPLACEMENT in text:
            self.invalid += text.count(_REPLACEMENT)
            text = text.replace(_REPLACEMENT, "")
        text = text.replace("\r\n", "\n").translate(_WHITESPACE_CONTROLS)
        text, n = _CONTROL.subn("", text)
        self.controls += n
        return text

    def warnings(self) -> tuple[str, ...]:
        out = []
        if self.invalid:
            out.append(
                f"{self.invalid} invalid character sequence(s) (bytes not valid UTF-8 or the "
                "file's encoding) dropped"
            )
        if self.controls:
            out.append(f"{self.controls} control character(s) (NUL and others) removed")
        return tuple(out)


def _assemble(
    title: str | None,
    sections: list[Section],
    *,
    fallback_title: str,
    limits: IngestSettings | None = None,
) -> ParsedDocument:
    """Clean every text, join section texts by blank lines, record each start offset, detect
    the language; hold the result to ``limits`` (sections, characters)."""
    limits = limits or IngestSettings()
    if len(sections) > limits.max_elements:
        from kb.ingest._formats.sniff import limit_error

        raise limit_error(
            f"too many sections: {len(sections)}", limits.max_elements, "MAX_ELEMENTS"
        )
    clean = _Hygiene()
    placed: list[Section] = []
    parts: list[str] = []
    offset = 0
    for section in sections:
        body = clean(section.text).strip()
        if not body:
            continue
        if parts:
            offset += 2
        location = section.location
        if any(_CONTROL.search(h) or _REPLACEMENT in h for h in location.heading_path):
            path = tuple(clean(h) for h in location.heading_path)
            location = replace(location, heading_path=path)
        question = clean(section.question) if section.question else section.question
        placed.append(
            replace(section, text=body, start=offset, location=location, question=question)
        )
        parts.append(body)
        offset += len(body)
    if not placed:
        raise ParseError("no text content")
    _check_chars(offset, limits)
    text = "\n\n".join(parts)
    questions = " ".join(s.question for s in placed if s.question)
    return ParsedDocument(
        title=clean(title or "").strip() or fallback_title,
        sections=placed,
        lang=detect_lang(f"{questions} {text}" if questions else text),
        text=text,
        warnings=clean.warnings(),
    )
