"""What a file really is, from its first bytes, and the checks on Office (zip) files made
before any parser opens them: content matching the suffix, encryption, decompressed size."""

from __future__ import annotations

import html
import re
import zipfile
from pathlib import Path

from kb.retrieval.errors import ParseError
from kb.retrieval.settings import IngestSettings

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"PK\x05\x06", "ZIP"),
    (OLE_MAGIC, "OLE"),
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"RIFF", "RIFF media"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"{\\rtf", "RTF"),
    (b"\x7fELF", "executable"),
)

OFFICE_MAIN_PART = {
    "DOCX": "word/document.xml",
    "PPTX": "ppt/presentation.xml",
    "XLSX": "xl/workbook.xml",
}
_CONTENT_TYPE_HINTS = {
    "DOCX": b"wordprocessingml",
    "PPTX": b"presentationml",
    "XLSX": b"spreadsheetml",
}
_OLE_STREAMS = (
    ("WordDocument", "DOC (legacy Word)"),
    ("Workbook", "XLS (legacy Excel)"),
    ("Book", "XLS (legacy Excel)"),
    ("PowerPoint Document", "PPT (legacy PowerPoint)"),
)
_DC_TITLE = re.compile(rb"<(?:\w+:)?title\b[^>]*>(.*?)</(?:\w+:)?title>", re.S)


def magic_kind(head: bytes, *, anywhere: bool = False) -> str | None:
    """The kind of binary file ``head`` (the first bytes) starts, or ``None``.

    ``anywhere`` also accepts ``%PDF-`` later in the first KiB, as PDF readers do.
    """
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if anywhere and b"%PDF-" in head[:1024]:
        return "PDF"
    return None


def describe(path: Path, head: bytes) -> str:
    """A short name for what the file looks like, for "looks like ..." messages."""
    kind = magic_kind(head, anywhere=True)
    if kind == "ZIP":
        return _zip_kind(path)
    if kind == "OLE":
        return _ole_kind(path)
    if kind:
        return kind
    start = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    if b"\x00" in head:
        return "binary data"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return "binary data"
    return "text"


def check_office(path: Path, fmt: str, *, limits: IngestSettings) -> str | None:
    """Check that ``path`` is a readable, unencrypted ``fmt`` (DOCX, PPTX, XLSX) file within
    ``limits``; return the title in its properties.

    Every XML part is read once, decompressed in blocks (never whole in memory): a part that
    declares a DTD is refused (entity expansion: "billion laughs"; Office files never carry
    one), and the paragraphs (DOCX, PPTX) or rows (XLSX) are counted against
    ``max_elements``, so a hostile file is refused in seconds instead of being parsed.

    :raises ParseError: ``not a valid DOCX file (looks like PDF)``, ``encrypted DOCX file ...``,
        ``corrupt DOCX file: ...``, ``archive expands past limit: ...``, and the limits'
        errors, each naming its setting.
    """
    with path.open("rb") as fh:
        head = fh.read(2048)
    kind = magic_kind(head)
    if kind == "OLE":
        ole = _ole_kind(path)
        if ole == "encrypted Office file":
            raise ParseError(f"encrypted {fmt} file (password-protected)")
        raise ParseError(f"not a valid {fmt} file (looks like {ole})")
    if kind != "ZIP":
        raise ParseError(f"not a valid {fmt} file (looks like {describe(path, head)})")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_archive_members:
                raise limit_error(
                    f"too many parts in the archive: {len(infos)}",
                    limits.max_archive_members,
                    "MAX_ARCHIVE_MEMBERS",
                )
            total = sum(info.file_size for info in infos)
            if total > limits.max_unzipped_bytes:
                raise ParseError(
                    f"archive expands past limit: {total} bytes uncompressed "
                    f"> {limits.max_unzipped_bytes} ({len(infos)} parts;"
                    " KB_INGEST__MAX_UNZIPPED_BYTES)"
                )
            for info in infos:
                ratio = info.file_size / max(1, info.compress_size)
                if info.file_size > _RATIO_FLOOR and ratio > limits.max_compression_ratio:
                    raise limit_error(
                        f"archive part {info.filename} expands {ratio:.0f} times",
                        limits.max_compression_ratio,
                        "MAX_COMPRESSION_RATIO",
                    )
            names = {info.filename for info in infos}
            actual = _office_kind(archive, names)
            if actual != fmt:
                raise ParseError(f"not a valid {fmt} file (looks like {actual})")
            _scan_xml(archive, infos, fmt, limits)
            return _core_title(archive, names)
    except zipfile.BadZipFile as exc:
        raise ParseError(f"corrupt {fmt} file: {exc}") from exc


def limit_error(what: str, limit: float, setting: str) -> ParseError:
    """The error of a file over one of the ingest limits, naming how to raise it."""
    return ParseError(f"{what}, over the limit {limit:g} (raise it with KB_INGEST__{setting})")


_RATIO_FLOOR = 1_000_000
"""Parts smaller than this uncompressed are not held to the compression ratio (a small run of
repeated XML compresses well and harms nobody)."""
_BLOCK = 1 << 20
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.I)
# What one element of each format looks like in its XML, and which parts hold them.
_ELEMENTS: dict[str, tuple[re.Pattern[bytes], re.Pattern[str], str]] = {
    "DOCX": (re.compile(rb"<w:p[ >/]"), re.compile(r"^word/.+\.xml$"), "paragraphs"),
    "PPTX": (
        re.compile(rb"<a:p[ >/]"),
        re.compile(r"^ppt/(slides|notesSlides)/.+\.xml$"),
        "paragraphs",
    ),
    "XLSX": (re.compile(rb"<(?:\w+:)?row[ >/]"), re.compile(r"^xl/worksheets/.+\.xml$"), "rows"),
}


def _scan_xml(
    archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo], fmt: str, limits: IngestSettings
) -> None:
    pattern, parts, noun = _ELEMENTS[fmt]
    count = 0
    for info in infos:
        name = info.filename
        if not name.endswith((".xml", ".rels")):
            continue
        counted = bool(parts.match(name))
        tail = b""
        with archive.open(info) as stream:
            while block := stream.read(_BLOCK):
                window = tail + block
                if _DTD.search(window):
                    raise ParseError(
                        f"XML part {name} declares a DTD or entities: refused (entity "
                        "expansion; Office files never need one)"
                    )
                if counted:
                    # Matches are a few bytes long: the tail carried over holds at most a
                    # partial one, which the previous window could not have counted.
                    count += len(pattern.findall(window)) - len(pattern.findall(tail))
                    if count > limits.max_elements:
                        raise limit_error(
                            f"too many {noun}: more than {limits.max_elements}",
                            limits.max_elements,
                            "MAX_ELEMENTS",
                        )
                tail = window[-16:]


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            return _office_kind(archive, set(archive.namelist()))
    except (zipfile.BadZipFile, OSError):
        return "ZIP archive (damaged)"


def _office_kind(archive: zipfile.ZipFile, names: set[str]) -> str:
    for fmt, part in OFFICE_MAIN_PART.items():
        if part in names:
            return fmt
    if "[Content_Types].xml" in names:
        content_types = _read_small(archive, "[Content_Types].xml")
        for fmt, hint in _CONTENT_TYPE_HINTS.items():
            if hint in content_types:
                return fmt
    if "mimetype" in names:
        mimetype = _read_small(archive, "mimetype")
        if mimetype.startswith(b"application/vnd.oasis.opendocument"):
            return "OpenDocument file"
        if mimetype.startswith(b"application/epub"):
            return "EPUB"
    return "ZIP archive"


def _ole_kind(path: Path) -> str:
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            if ole.exists("EncryptedPackage") or ole.exists("EncryptionInfo"):
                return "encrypted Office file"
            for stream, kind in _OLE_STREAMS:
                if ole.exists(stream):
                    return kind
    except Exception:  # a damaged compound file is still "not this format"
        return "OLE compound file (damaged)"
    return "OLE compound file"


def _read_small(archive: zipfile.ZipFile, name: str, limit: int = 1_000_000) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        return b""
    return archive.read(info)


def _core_title(archive: zipfile.ZipFile, names: set[str]) -> str | None:
    if "docProps/core.xml" not in names:
        return None
    match = _DC_TITLE.search(_read_small(archive, "docProps/core.xml"))
    if not match:
        return None
    title = html.unescape(match.group(1).decode("utf-8", errors="replace")).strip()
    return title or None
