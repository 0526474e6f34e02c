"""ingest.parse on the tiny corpus (tests/fixtures/corpus, made by make_fixtures.py) and on
bad files made here: text, facts, locations, encodings, and one ParseError per kind of bad."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kb.ingest._formats.common import github_slug
from kb.ingest._formats.text import decode_text
from kb.ingest.parse import SUPPORTED_SUFFIXES, parse_file
from kb.retrieval.errors import ParseError
from kb.retrieval.models import ParsedDocument, Section
from kb.retrieval.settings import IngestSettings
from tests.fixtures.facts import FACTS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
LIMIT = 10_000_000


@pytest.fixture(scope="module")
def docs() -> dict[str, ParsedDocument]:
    """Every corpus file parsed once (unstructured's first call is the slow one)."""
    return {name: parse_file(CORPUS / name, max_bytes=LIMIT) for name in FACTS}


def _section(doc: ParsedDocument, needle: str) -> Section:
    found = [s for s in doc.sections if needle in s.text]
    assert found, f"{needle!r} in no section of {doc.title!r}"
    return found[0]


# --- every format -------------------------------------------------------------------------------


def test_corpus_covers_every_supported_format() -> None:
    suffixes = {Path(name).suffix for name in FACTS}
    assert suffixes == SUPPORTED_SUFFIXES - {".markdown", ".htm"}
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(FACTS)


@pytest.mark.parametrize("name", sorted(FACTS))
def test_each_format_returns_text_with_its_fact(docs: dict[str, ParsedDocument], name: str) -> None:
    doc = docs[name]
    assert doc.sections
    assert FACTS[name] in doc.text
    assert doc.title


@pytest.mark.parametrize("name", sorted(FACTS))
def test_text_is_sections_joined_and_starts_index_it(
    docs: dict[str, ParsedDocument], name: str
) -> None:
    doc = docs[name]
    assert doc.text == "\n\n".join(s.text for s in doc.sections)
    for section in doc.sections:
        assert section.text and section.text == section.text.strip()
        assert doc.text[section.start : section.start + len(section.text)] == section.text


@pytest.mark.parametrize(
    ("name", "lang"),
    [
        ("printer_guide.md", "en"),
        ("wifi_setup_ja.md", "ja"),
        ("maintenance_ja.docx", "ja"),
        ("hours_sjis.txt", "ja"),
        ("field_manual.pdf", "en"),
        ("faq_ja.csv", "ja"),
    ],
)
def test_language(docs: dict[str, ParsedDocument], name: str, lang: str) -> None:
    assert docs[name].lang == lang


def test_alias_suffixes_and_upper_case(tmp_path: Path) -> None:
    for source, target in [
        ("printer_guide.md", "guide.markdown"),
        ("support_portal.html", "portal.HTM"),
        ("field_manual.pdf", "MANUAL.PDF"),
    ]:
        shutil.copy(CORPUS / source, tmp_path / target)
        assert FACTS[source] in parse_file(tmp_path / target, max_bytes=LIMIT).text


# --- locations -----------------------------------------------------------------------------------


def test_markdown_heading_paths_slugs_tables_and_front_matter(
    docs: dict[str, ParsedDocument],
) -> None:
    doc = docs["printer_guide.md"]
    assert doc.title == "Aster MF-3400 Printer Guide"  # from the front matter
    fact = _section(doc, "toner cartridge yields")
    assert fact.location.heading_path == ("Aster MF-3400 Printer Guide", "Toner & Supplies")
    assert fact.location.anchor == "toner--supplies"  # GitHub: "&" dropped, both spaces kept
    assert "Part: Toner; Code: TN-3400; Yield: 12,000 pages" in fact.text
    jam = _section(doc, "jammed sheet")
    assert jam.location.heading_path[-2:] == ("Paper Jams", "Tray 2")
    assert jam.location.anchor == "tray-2"
    assert "- Turn the printer off first.\n- Wait until the fuser cools down." in jam.text
    assert "title:" not in doc.text


def test_markdown_japanese_slugs(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["wifi_setup_ja.md"]
    assert doc.title == "無線LANの設定"
    assert _section(doc, "WPS ボタン").location.anchor == "wps-で接続する"
    faq = _section(doc, "5メートル")
    assert faq.location.heading_path == ("無線LANの設定", "よくある質問（FAQ）")
    assert faq.location.anchor == "よくある質問faq"


def test_github_slug_repeats() -> None:
    seen: dict[str, int] = {}
    assert [github_slug(t, seen) for t in ("Setup", "Setup!", "Set up", "設定 手順")] == [
        "setup",
        "setup-1",
        "set-up",
        "設定-手順",
    ]


def test_html_anchors_title_and_tables(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["support_portal.html"]
    assert doc.title == "Aster Support Portal"
    wps = _section(doc, "WPS button")
    assert wps.location.heading_path == ("Aster Support", "Pairing with WPS")
    assert wps.location.anchor == "wps-pairing"  # the heading's own id
    static = _section(doc, "static IP")
    assert static.location.heading_path[-1] == "Static addresses"
    assert static.location.anchor == "network"  # no id: the enclosing <section id>
    assert _section(doc, "保証期間").location.anchor == "warranty-ja"
    contact = _section(doc, "hotline")
    assert contact.location.anchor is None
    assert "Region: Tokyo; Phone: 03-0000-3400" in contact.text
    assert "Home" not in doc.text  # navigation is not content


def test_ordered_list_items_keep_their_numbers_in_html_and_markdown(tmp_path: Path) -> None:
    # unstructured keeps a list item's text, not its number: a procedure in an HTML or
    # Markdown guide came out as "- " bullets, and the answer never quoted it as numbered steps.
    (tmp_path / "guide.html").write_text(
        "<html><body><h1>Guide</h1><h2>Submitting a report</h2>"
        "<ol><li>Open the report and click <b>Submit</b>.</li>"
        "<li>Check the warnings.<ul><li>Yellow ones let you submit.</li></ul></li>"
        "<li>Click Submit again.</li></ol>"
        "<p>Recalling:</p><ol start='4'><li>Click Recall.</li></ol>"
        "<ul><li>Drafts stay editable.</li></ul></body></html>",
        encoding="utf-8",
    )
    html = parse_file(tmp_path / "guide.html", max_bytes=LIMIT).text
    assert "1. Open the report and click Submit.\n2. Check the warnings." in html
    assert "- Yellow ones let you submit.\n3. Click Submit again." in html
    assert "4. Click Recall." in html and "- Drafts stay editable." in html
    (tmp_path / "guide.md").write_text(
        "# ガイド\n\n## ユーザーの追加\n\n1. ［管理］をクリックします。\n"
        "2. **氏名**を入力します。\n3. ［保存］をクリックします。\n\n"
        "招待について：\n\n- 招待メールが届きます。\n",
        encoding="utf-8",
    )
    md = parse_file(tmp_path / "guide.md", max_bytes=LIMIT).text
    steps = "1. ［管理］をクリックします。\n2. 氏名を入力します。\n3. ［保存］をクリックします。"
    assert steps in md
    assert "- 招待メールが届きます。" in md


def test_pdf_pages_headings_and_running_footer(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["field_manual.pdf"]
    assert doc.title == "Aster Field Manual"
    fact = _section(doc, FACTS["field_manual.pdf"])
    assert fact.location.page == 2
    assert fact.location.heading_path == ("Supplies",)
    ja = _section(doc, "定着ユニットは10万枚ごとに交換してください。")
    assert (ja.location.page, ja.location.heading_path) == (2, ("Supplies", "定着ユニット"))
    rollers = _section(doc, "pickup rollers")
    assert (rollers.location.page, rollers.location.heading_path) == (
        1,
        ("Maintenance", "Cleaning the rollers"),
    )
    assert _section(doc, "E-27").location.page == 3
    assert {s.location.page for s in doc.sections} == {1, 2, 3}
    assert "page 2" not in doc.text  # "Aster Field Manual - page N" on every page


def test_docx_heading_styles_title_and_tables(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["admin_guide.docx"]
    assert doc.title == "Aster Admin Guide"
    assert _section(doc, "renew every").location.heading_path == ("Contracts",)
    fees = _section(doc, "Premium")
    assert fees.location.heading_path == ("Contracts", "Renewal fees")
    assert "Plan: Premium; Fee: 80,000 JPY" in fees.text
    accounts = _section(doc, "per department")
    assert accounts.location.heading_path == ("Accounts",)
    assert accounts.text.startswith("- Create one account")
    ja = docs["maintenance_ja.docx"]
    assert _section(ja, "03-0000-3400").location.heading_path == ("保守契約", "連絡先")


def test_pptx_one_section_per_slide(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["training.pptx"]
    assert doc.title == "Aster MF-5000 Training"
    slides = {s.location.slide: s for s in doc.sections}
    assert sorted(slides) == [1, 2, 3]
    assert slides[2].location.heading_path == ("Speed",)
    assert FACTS["training.pptx"] in slides[2].text
    assert "Option: Finisher FN-50; Price: 98,000 JPY" in slides[3].text
    assert "Notes: Mention the trade-in offer." in slides[3].text


def test_xlsx_rows_with_sheet_and_row(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["price_list.xlsx"]
    assert doc.title == "Aster price list"
    row = _section(doc, "MF-5000")
    assert (row.location.sheet, row.location.row) == ("Printers", 5)
    assert row.kind == "text"
    assert _section(doc, "price list 2026").location.row == 1  # a title row above the header
    scanner = _section(doc, "SC-200")
    assert (scanner.location.sheet, scanner.location.row) == ("Scanners", 2)
    assert scanner.text == "Model: SC-200; Price (JPY): 45000"


def test_qa_xlsx(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["faq.xlsx"]
    qa = [s for s in doc.sections if s.kind == "qa"]
    assert [s.question for s in qa] == [
        "How do I reset the admin password?",
        "使用済みトナーの回収方法は？",
    ]
    en, ja = qa
    assert en.text == FACTS["faq.xlsx"]
    assert (en.location.sheet, en.location.row, en.location.heading_path) == (
        "FAQ",
        2,
        ("Accounts",),
    )
    assert en.groups == ("it", "support")
    assert ja.groups is None  # empty cell: inherit the document's groups
    assert (ja.location.row, ja.location.heading_path) == (3, ("消耗品",))
    # the row without an answer is skipped; the second sheet has no Q&A header: plain rows
    notes = _section(doc, "hotline closes")
    assert (notes.kind, notes.location.sheet, notes.location.row) == ("text", "Notes", 2)


def test_qa_csv_in_shift_jis(docs: dict[str, ParsedDocument]) -> None:
    doc = docs["faq_ja.csv"]
    assert all(s.kind == "qa" for s in doc.sections)
    assert [s.location.row for s in doc.sections] == [2, 3]
    first, second = doc.sections
    assert first.question == "用紙詰まりの直し方は？"
    assert first.location.heading_path == ("トラブル",)
    assert second.question == "What is the warranty period of the MF-3400?"
    assert second.text.endswith("Keep the receipt, it is needed for repairs.")  # quoted newline
    assert second.groups == ("sales", "support")
    assert second.location.sheet is None


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        ("Frage;Antwort;Sprache", "Wie lange gilt die Garantie?;Drei Jahre.;de"),
        ("Q\tA\tCategory", "Is there a Mac driver?\tYes, on the download page.\tDrivers"),
        ("question,answer,groups", '"Who can see this?","Only HR.","hr;managers"'),
    ],
)
def test_qa_csv_header_aliases_and_delimiters(tmp_path: Path, header: str, rows: str) -> None:
    path = tmp_path / "qa.csv"
    path.write_text(f"{header}\n{rows}\n", encoding="utf-8-sig")
    (section,) = parse_file(path, max_bytes=LIMIT).sections
    assert section.kind == "qa" and section.question and section.text
    assert section.location.row == 2


# --- encodings ---------------------------------------------------------------------------------


def test_japanese_legacy_encodings(docs: dict[str, ParsedDocument]) -> None:
    assert docs["hours_sjis.txt"].sections[0].text == "アスター社サポート窓口のご案内"
    assert "約3万枚ごとに交換してください。" in docs["drum_eucjp.txt"].text
    assert "\r" not in docs["release_notes.txt"].text
    assert [s.text for s in docs["release_notes.txt"].sections][0] == "Firmware 2.4 release notes"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Café crème brûlée à la carte, très élégant.".encode("latin-1"), "Café crème"),
        ("\ufeffBOM付きのUTF-8です。".encode(), "BOM付きのUTF-8です。"),
        ("ﾊﾝｶｸｶﾀｶﾅ の説明です。".encode("cp932"), "ﾊﾝｶｸｶﾀｶﾅ の説明です"),
        ("設定方法".encode("euc_jp") * 3, "設定方法設定方法"),
        ("UTF-16 の説明です。".encode("utf-16"), "UTF-16 の説明です。"),
        (
            "壊れた文字のあるファイルです。".encode() * 5 + b"\xe3\x81",
            "壊れた文字のあるファイルです。",
        ),
    ],
)
def test_decode_text(data: bytes, expected: str) -> None:
    assert decode_text(data).startswith(expected)


def test_html_meta_charset_shift_jis(tmp_path: Path) -> None:
    html = (
        '<html><head><meta charset="Shift_JIS"><title>案内</title></head>'
        '<body><h1 id="a">窓口</h1><p>平日のみ営業しています。</p></body></html>'
    )
    path = tmp_path / "sjis.html"
    path.write_bytes(html.encode("cp932"))
    doc = parse_file(path, max_bytes=LIMIT)
    assert doc.title == "案内"
    assert doc.sections[0].text == "平日のみ営業しています。"
    assert doc.sections[0].location.anchor == "a"


# --- bad files ----------------------------------------------------------------------------------


def _image_only_pdf(path: Path) -> None:
    from PIL import Image
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path))
    c.drawImage(ImageReader(Image.new("RGB", (64, 32), "gray")), 72, 600, width=200, height=100)
    c.showPage()
    c.save()


def _encrypted_pdf(path: Path, user_password: str) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(CORPUS / "field_manual.pdf"))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    with path.open("wb") as fh:
        writer.write(fh)


def _encrypted_docx(path: Path) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    with (CORPUS / "admin_guide.docx").open("rb") as source, path.open("wb") as target:
        OOXMLFile(source).encrypt("secret", target)


def _zip_bomb_docx(path: Path) -> None:
    shutil.copy(CORPUS / "admin_guide.docx", path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", bytes(8_000_000))


def _random_bytes(n: int, *, nul: bool) -> bytes:
    rng = random.Random(7)
    low = 0 if nul else 1
    data = bytes(rng.randint(low, 255) for _ in range(n))
    return data if nul else data.replace(b"\x00", b"\x01")


BAD_FILES = {
    "empty": ("empty.md", lambda p: p.write_bytes(b""), "empty file"),
    "blank": ("blank.txt", lambda p: p.write_text(" \n\n\t\n"), "no text content"),
    "junk_with_nul": (
        "junk.md",
        lambda p: p.write_bytes(_random_bytes(4096, nul=True)),
        "not a text file (binary content)",
    ),
    "junk_without_nul": (
        "junk.txt",
        lambda p: p.write_bytes(_random_bytes(4096, nul=False)),
        "not a text file (binary content)",
    ),
    "nul_in_text": (
        "nul.md",
        lambda p: p.write_bytes(b"# Title\n\nText\x00with a NUL byte.\n"),
        "not a text file (binary content)",
    ),
    "png_as_md": (
        "image.md",
        lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64)),
        "not a text file (looks like PNG image)",
    ),
    "corrupt_pdf": (
        "corrupt.pdf",
        lambda p: p.write_bytes(b"%PDF-1.7\n" + b"garbage \x8f" * 200),
        "corrupt PDF: ",
    ),
    "html_as_pdf": (
        "page.pdf",
        lambda p: p.write_text("<!DOCTYPE html><html><body>x</body></html>"),
        "not a valid PDF file (looks like HTML)",
    ),
    "image_only_pdf": ("scan.pdf", _image_only_pdf, "no text layer (needs OCR)"),
    "encrypted_pdf": ("locked.pdf", lambda p: _encrypted_pdf(p, "secret"), "encrypted PDF: "),
    "pdf_as_docx": (
        "manual.docx",
        lambda p: shutil.copy(CORPUS / "field_manual.pdf", p),
        "not a valid DOCX file (looks like PDF)",
    ),
    "xlsx_as_pptx": (
        "deck.pptx",
        lambda p: shutil.copy(CORPUS / "price_list.xlsx", p),
        "not a valid PPTX file (looks like XLSX)",
    ),
    "text_as_xlsx": (
        "sheet.xlsx",
        lambda p: p.write_text("a,b\n1,2\n"),
        "not a valid XLSX file (looks like text)",
    ),
    "corrupt_docx": (
        "broken.docx",
        lambda p: p.write_bytes(b"PK\x03\x04" + bytes(300)),
        "corrupt DOCX file: ",
    ),
    "encrypted_docx": ("locked.docx", _encrypted_docx, "encrypted DOCX file (password-protected)"),
    "zip_bomb_docx": ("bomb.docx", _zip_bomb_docx, "archive expands past limit"),
    "csv_not_qa": (
        "prices.csv",
        lambda p: p.write_text("model,price\nMF-3400,129800\n"),
        "CSV is not a Q&A sheet: missing column(s) question, answer",
    ),
    "csv_no_answer": (
        "half.csv",
        lambda p: p.write_text("質問,カテゴリ\nトナーは？,消耗品\n"),
        "CSV is not a Q&A sheet: missing column(s) answer",
    ),
    "unsupported": ("notes.xyz", lambda p: p.write_text("hello"), "unsupported file type .xyz"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_gives_its_parse_error(tmp_path: Path, case: str) -> None:
    name, make, message = BAD_FILES[case]
    path = tmp_path / name
    make(path)
    with pytest.raises(ParseError) as info:
        parse_file(path, max_bytes=LIMIT, max_unzipped_bytes=1_000_000)
    assert info.value.detail.startswith(message), info.value.detail
    assert info.value.code == "PARSE_ERROR"


def test_zip_bomb_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "bomb.docx"
    _zip_bomb_docx(path)
    assert path.stat().st_size < 100_000  # 8 MB of zeros compress to almost nothing
    with pytest.raises(ParseError, match=r"archive expands past limit: \d+ bytes"):
        parse_file(path, max_bytes=LIMIT, max_unzipped_bytes=1_000_000)
    # Under a raised limit it parses (the padding part expands 1000 times: over the ratio limit
    # of issue 20 too, raised here).
    roomy = IngestSettings(max_unzipped_bytes=50_000_000, max_compression_ratio=10_000)
    assert "12 months" in parse_file(path, max_bytes=LIMIT, limits=roomy).text


def test_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 150)
    with pytest.raises(ParseError) as info:
        parse_file(path, max_bytes=100)
    assert info.value.detail == "file too large: 150 bytes > limit 100"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="file not found"):
        parse_file(tmp_path / "gone.pdf", max_bytes=LIMIT)


def test_pdf_with_owner_password_only_still_parses(tmp_path: Path) -> None:
    path = tmp_path / "restricted.pdf"
    _encrypted_pdf(path, "")
    assert FACTS["field_manual.pdf"] in parse_file(path, max_bytes=LIMIT).text


@pytest.mark.parametrize("name", sorted(FACTS))
def test_damaged_files_never_raise_anything_but_parse_error(tmp_path: Path, name: str) -> None:
    """Truncated and bit-flipped copies of every fixture: a document or a ParseError."""
    data = (CORPUS / name).read_bytes()
    rng = random.Random(name)
    flipped = bytearray(data)
    for _ in range(max(1, len(data) // 200)):
        flipped[rng.randrange(len(data))] ^= 0xFF
    for label, variant in [("half", data[: len(data) // 2]), ("flip", bytes(flipped))]:
        path = tmp_path / f"{label}{Path(name).suffix}"
        path.write_bytes(variant)
        try:
            parse_file(path, max_bytes=LIMIT)
        except ParseError:
            pass


# --- offline -----------------------------------------------------------------------------------

_OFFLINE_SCRIPT = r"""
import json, socket, sys
from pathlib import Path

def _blocked(*args, **kwargs):
    raise OSError("network disabled by test_parse")

socket.socket.connect = _blocked
socket.socket.connect_ex = _blocked
socket.create_connection = _blocked
socket.getaddrinfo = _blocked

from kb.ingest.parse import parse_file
from unstructured.nlp import tokenize

out = {Path(name).name: parse_file(Path(name), max_bytes=10_000_000).text for name in sys.argv[1:]}
out["__pipes__"] = tokenize._get_nlp().pipe_names
print(json.dumps(out))
"""


@pytest.mark.slow
def test_parses_offline_in_a_fresh_process() -> None:
    """No network, no spaCy model, no opt-out variables set by the caller: parse.py applies the
    spaCy workaround and the analytics opt-out itself."""
    names = ["printer_guide.md", "support_portal.html", "admin_guide.docx", "field_manual.pdf"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE")
    }
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, *(str(CORPUS / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out.pop("__pipes__") == ["sentencizer"]  # the blank pipeline, not en_core_web_sm
    for name in names:
        assert FACTS[name] in out[name]
    assert "Unstructured Open Source" not in result.stdout + result.stderr


# --- PDF tables ---------------------------------------------------------------------------------


def _pdf_with_tables(path: Path) -> None:
    """A heading, a paragraph, a ruled table, a paragraph, then a page with a second table."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle

    styles = getSampleStyleSheet()
    grid = TableStyle([("GRID", (0, 0), (-1, -1), 0.5, "black")])
    specs = Table(
        [
            ["Paper source", "Capacity", "Weight"],
            ["Tray 1", "550 sheets", "60-163 g/m2"],
            ["Bypass tray", "100 sheets; 10 envelopes", "60-220 g/m2"],
        ],
        style=grid,
    )
    codes = Table([["Code", "What to do"], ["E-452", "Lower the resolution."]], style=grid)
    story = [
        Paragraph("Paper", styles["Heading1"]),
        Paragraph("The trays hold the following paper.", styles["BodyText"]),
        specs,
        Paragraph("Load paper print side up.", styles["BodyText"]),
        PageBreak(),
        Paragraph("Error codes", styles["Heading1"]),
        codes,
    ]
    SimpleDocTemplate(str(path), pagesize=A4, title="Table Guide").build(story)


def test_pdf_tables_read_row_by_row_where_they_stand(tmp_path: Path) -> None:
    path = tmp_path / "tables.pdf"
    _pdf_with_tables(path)
    doc = parse_file(path, max_bytes=LIMIT)
    paper = _section(doc, "Tray 1")
    assert paper.location.heading_path == ("Paper",) and paper.location.page == 1
    rows = [
        "Paper source: Tray 1; Capacity: 550 sheets; Weight: 60-163 g/m2",
        "Paper source: Bypass tray; Capacity: 100 sheets; 10 envelopes; Weight: 60-220 g/m2",
    ]
    assert "\n".join(rows) in paper.text
    # In reading order: the paragraph above, the rows, the paragraph below; no cell twice.
    above = paper.text.index("The trays hold")
    below = paper.text.index("Load paper print side up.")
    assert above < paper.text.index(rows[0]) < below
    assert paper.text.count("550 sheets") == 1
    codes = _section(doc, "E-452")
    assert codes.location.page == 2 and codes.location.heading_path == ("Error codes",)
    assert "Code: E-452; What to do: Lower the resolution." in codes.text


def test_pdf_without_readable_tables_still_parses_as_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pdfplumber.page import Page

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("table finder failed")

    path = tmp_path / "tables.pdf"
    _pdf_with_tables(path)
    monkeypatch.setattr(Page, "find_tables", broken)
    doc = parse_file(path, max_bytes=LIMIT)
    assert "550 sheets" in doc.text and "Load paper print side up." in doc.text
    assert "Capacity: 550 sheets" not in doc.text
