from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from app.errors import EmptyDocument, ParseError, UnsupportedDocument
from ingest.parsing import SUPPORTED_KINDS, ParseOptions, parse_to_markdown
from tests.documents import (
    HOLIDAY_POLICY_TXT,
    SECURITY_POLICY_MD,
    TRAVEL_POLICY_HTML,
    converted,
    corrupt_docx,
    email_bytes,
    expense_policy_pdf,
    fake_zip,
    odp_bytes,
    pptx_bytes,
    refund_policy_docx,
    scanned_pdf,
    text_image,
    xlsx_bytes,
)

# dedoc's API schemas use pydantic v1 idioms; they warn on import.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")


@pytest.fixture
def upload(tmp_path: Path):
    """Store bytes the way the API does: under their sha256, without an extension."""

    def store(content: bytes) -> Path:
        path = tmp_path / hashlib.sha256(content).hexdigest()
        path.write_bytes(content)
        return path

    return store


def parse(upload, content: bytes, kind: str, **options: str) -> str:
    return parse_to_markdown(upload(content), kind, ParseOptions(**options))


def lines_of(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.strip()]


def docx_bytes(build) -> bytes:
    import docx

    document = docx.Document()
    build(document)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pdf_bytes(*pages: str, password: str = "") -> bytes:
    import pymupdf

    pdf = pymupdf.open()
    for text in pages:
        page = pdf.new_page()
        if text:
            page.insert_text((72, 72), text, fontsize=11)
        else:  # a page with a drawing but no text, like a scan
            page.draw_rect(pymupdf.Rect(72, 72, 300, 300), fill=(0.5, 0.5, 0.5))
    if password:
        return pdf.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw=password)
    return pdf.tobytes()


def test_docx_headings_become_nested_markdown_headers_with_their_paragraphs(upload) -> None:
    markdown = parse(upload, refund_policy_docx(), "docx")
    assert lines_of(markdown) == [
        "# Refund Policy",
        "This policy explains how customers get their money back.",
        "## Eligibility",
        "Customers can request a full refund within 30 days of purchase.",
        "## Gift Cards",
        "Gift cards are final sale and cannot be refunded or exchanged for cash.",
    ]


def test_docx_header_depth_follows_the_tree_and_stops_at_six(upload) -> None:
    def build(document) -> None:
        for level in range(1, 9):
            document.add_heading(f"Level {level}", level=level)
            document.add_paragraph(f"Text {level}.")

    headers = [line for line in lines_of(parse(upload, docx_bytes(build), "docx")) if line.startswith("#")]
    assert headers == [f"{'#' * min(level, 6)} Level {level}" for level in range(1, 9)]


def test_docx_lists_and_tables_stay_readable_and_in_place(upload) -> None:
    def build(document) -> None:
        document.add_heading("Returns", level=1)
        document.add_paragraph("Bring the receipt", style="List Bullet")
        document.add_paragraph("Keep the box", style="List Bullet")
        document.add_paragraph("Fill in the form", style="List Number")
        document.add_paragraph("Return windows:")
        table = document.add_table(rows=2, cols=2)
        for cell, text in zip(table._cells, ["Item", "Days", "Shoes", "30"], strict=True):
            cell.text = text
        document.add_paragraph("Ask the shop for anything else.")

    assert lines_of(parse(upload, docx_bytes(build), "docx")) == [
        "# Returns",
        "- Bring the receipt",
        "- Keep the box",
        "1. Fill in the form",
        "Return windows:",
        "| Item | Days |",
        "| --- | --- |",
        "| Shoes | 30 |",
        "Ask the shop for anything else.",
    ]


def test_html_headings_become_nested_markdown_headers(upload) -> None:
    assert lines_of(parse(upload, TRAVEL_POLICY_HTML, "html")) == [
        "# Travel Policy",
        "Rules for business trips taken by employees.",
        "## Hotels",
        "Employees may book hotel rooms that cost at most 180 euros per night.",
        "## Flights",
        "Economy class is required for flights shorter than six hours.",
    ]


def test_html_tables_and_lists_stay_in_place_with_rows_apart(upload) -> None:
    page = b"""<html><body><h1>Allowances</h1><p>Daily rates:</p>
    <table><tr><th>City</th><th>Rate</th></tr><tr><td>Berlin</td><td>40</td></tr><tr><td>Paris</td><td>45</td></tr></table>
    <p>Extras:</p>
    <table border="1"><tr><td>Tips</td><td>not refunded</td></tr><tr><td>Taxis</td><td>refunded</td></tr></table>
    <h2>Steps</h2><ol><li>Keep receipts<ul><li>paper</li><li>photos</li></ul></li><li>Submit monthly</li></ol>
    </body></html>"""
    assert lines_of(parse(upload, page, "html")) == [
        "# Allowances",
        "Daily rates:",
        "| City | Rate |",
        "| --- | --- |",
        "| Berlin | 40 |",
        "| Paris | 45 |",
        "Extras:",
        "| Tips | not refunded |",
        "| --- | --- |",
        "| Taxis | refunded |",
        "## Steps",
        "1. Keep receipts",
        "  - paper",
        "  - photos",
        "2. Submit monthly",
    ]


def test_markdown_comes_back_unchanged(upload) -> None:
    assert parse(upload, SECURITY_POLICY_MD, "md") == SECURITY_POLICY_MD.decode()


def test_text_keeps_its_paragraphs_and_its_title_becomes_a_header(upload) -> None:
    markdown = parse(upload, HOLIDAY_POLICY_TXT + b"\n# of days: 25\n", "txt")
    assert markdown.startswith("# Holiday Policy\n\nEvery employee receives 25 days of paid vacation")
    assert "carried over until the end of March" in markdown
    assert "\\# of days: 25" in markdown


def test_heading_lines_of_plain_text_become_nested_headers(upload) -> None:
    text = (
        b"Review Policy\n\nVersion 3 | owner: HR\n\n1. Purpose\n\nWhy we review.\n\n"
        b"2. The Cycle\n\n2.1 Goal Setting\n\nGoals are set in Compass.\n\n"
        b"Ratings are given in December\n\n1 - Below\n2 - Meets\n\nContacts And Help\n\nAsk HR.\n"
    )
    assert [line for line in lines_of(parse(upload, text, "txt")) if line.startswith("#")] == [
        "# Review Policy",
        "## 1. Purpose",
        "## 2. The Cycle",
        "### 2.1 Goal Setting",
        "## Contacts And Help",
    ]


def test_pdf_text_layer_marks_where_each_page_starts(upload) -> None:
    markdown = parse(upload, pdf_bytes("Meals cost at most 40 euros.", "", "Receipts within two weeks."), "pdf")
    assert lines_of(markdown) == [
        "<!--page:1-->",
        "Meals cost at most 40 euros.",
        "<!--page:3-->",
        "Receipts within two weeks.",
    ]


def structured_pdf(outline: bool) -> bytes:
    """Three pages of a policy: a title, numbered sections (larger type), a bold subsection, a running footer."""
    import pymupdf

    pdf = pymupdf.open()
    title, section, bold, body = (20, "hebo"), (15, "hebo"), (11, "hebo"), (11, "helv")
    pages = [
        [("Travel Policy", *title), ("1. Booking", *section), ("Book trains two weeks ahead of the trip.", *body)],
        [("1.1 Hotels", *bold), ("Hotels cost at most 150 euros a night,", *body), ("breakfast in-", *body)]
        + [("cluded.", *body)],
        [("2. Expenses", *section), ("File claims within 30 days.", *body)],
    ]
    for number, lines in enumerate(pages, start=1):
        page = pdf.new_page()
        y = 72.0
        for text, size, font in lines:
            y += size * 2.2 if font == "hebo" else size * 1.3
            page.insert_text((72, y), text, fontsize=size, fontname=font)
        page.insert_text((72, 800), f"Acme Corp - page {number} of 3", fontsize=8)
    if outline:
        pdf.set_toc([[1, "Travel Policy", 1], [2, "Booking", 1], [3, "Hotels", 2], [2, "Expenses", 3]])
    return pdf.tobytes()


def test_pdf_headings_come_from_its_outline(upload) -> None:
    markdown = parse(upload, structured_pdf(outline=True), "pdf")
    assert [line for line in lines_of(markdown) if line.startswith("#")] == [
        "# Travel Policy",
        "## 1. Booking",
        "### 1.1 Hotels",
        "## 2. Expenses",
    ]
    assert "Hotels cost at most 150 euros a night, breakfast included." in markdown  # lines joined, dehyphenated
    assert "Acme Corp" not in markdown  # the running footer


def test_pdf_without_an_outline_takes_its_headings_from_the_fonts(upload) -> None:
    markdown = parse(upload, structured_pdf(outline=False), "pdf")
    assert lines_of(markdown) == [
        "<!--page:1-->",
        "# Travel Policy",
        "## 1. Booking",
        "Book trains two weeks ahead of the trip.",
        "<!--page:2-->",
        "### 1.1 Hotels",
        "Hotels cost at most 150 euros a night, breakfast included.",
        "<!--page:3-->",
        "## 2. Expenses",
        "File claims within 30 days.",
    ]


def test_scanned_pdf_pages_are_read_by_ocr_and_keep_their_page(upload) -> None:
    markdown = parse(upload, scanned_pdf((), ("Hotels cost at most 150 euros a night.",)), "pdf")
    assert "<!--page:1-->\n\nThis cover page of the mail room policy has a text layer." in markdown
    page_two = markdown.split("<!--page:2-->")[1]
    assert "Hotels cost at most 150 euros a night." in page_two


def test_images_of_text_are_read_by_ocr(upload) -> None:
    markdown = parse(upload, text_image("Badges are renewed every 2 years.", fmt="png"), "png")
    assert "Badges are renewed every 2 years." in markdown
    assert "Expense claims" in parse(upload, text_image("Expense claims close on Friday.", fmt="jpeg"), "jpeg")


def test_ocr_can_be_off_and_then_says_so(upload) -> None:
    with pytest.raises(EmptyDocument, match="OCR is off"):
        parse(upload, scanned_pdf(("Only pixels here.",)), "pdf", ocr_languages="")
    with pytest.raises(UnsupportedDocument, match="ingest.ocr_languages"):
        parse(upload, text_image("Only pixels here."), "png", ocr_languages="")


def test_an_ocr_language_that_is_not_installed_is_named(upload) -> None:
    with pytest.raises(ParseError, match="install the language"):
        parse(upload, text_image("Bonjour."), "png", ocr_languages="zzz")


def test_pdf_without_a_text_layer_is_empty(upload) -> None:
    with pytest.raises(EmptyDocument, match="no text was found in the PDF, in its text layer or by OCR"):
        parse(upload, pdf_bytes(""), "pdf")


@pytest.mark.parametrize(
    "content", [expense_policy_pdf()[:300], b"%PDF-1.7\n" + bytes(range(256)) * 4], ids=["truncated", "garbage"]
)
def test_damaged_pdf_is_a_parse_error(upload, content: bytes) -> None:
    with pytest.raises(ParseError, match="the PDF file could not be read"):
        parse(upload, content, "pdf")


def test_password_protected_pdf_is_a_parse_error(upload) -> None:
    with pytest.raises(ParseError, match="password"):
        parse(upload, pdf_bytes("Secret plans.", password="secret"), "pdf")


def test_pdf_through_dedoc_reads_it_or_says_how_to_get_its_models(upload) -> None:
    try:
        markdown = parse(upload, expense_policy_pdf(), "pdf", pdf_parser="dedoc")
    except ParseError as exc:  # offline (here, CI): the hub models are missing
        assert "dedoc.download_models" in str(exc) and "pdf_parser to text-layer" in str(exc)
    else:
        assert "40 euros" in markdown


def test_pptx_slides_become_sections(upload) -> None:
    content = pptx_bytes(("Onboarding", "New staff get a laptop."), ("Badges", "Collect it at reception."))
    assert lines_of(parse(upload, content, "pptx")) == [
        "# Onboarding",
        "New staff get a laptop.",
        "# Badges",
        "Collect it at reception.",
    ]


def test_xlsx_sheet_becomes_a_markdown_table(upload) -> None:
    content = xlsx_bytes([["City", "Meal allowance"], ["Berlin", "forty euros"]])
    assert lines_of(parse(upload, content, "xlsx")) == [
        "| City | Meal allowance |",
        "| --- | --- |",
        "| Berlin | forty euros |",
    ]


def test_csv_becomes_a_markdown_table(upload) -> None:
    content = b'item,days\nShoes,30\n"Gift cards, vouchers",0\n'
    assert lines_of(parse(upload, content, "csv")) == [
        "| item | days |",
        "| --- | --- |",
        "| Shoes | 30 |",
        "| Gift cards, vouchers | 0 |",
    ]


@pytest.mark.parametrize("html", [False, True], ids=["plain", "html"])
def test_an_email_has_its_subject_as_title_its_fields_and_its_text(upload, html: bool) -> None:
    content = email_bytes("Office move", "We move to the fourth floor on 1 December.", {"plan.md": b"# Plan"}, html)
    assert lines_of(parse(upload, content, "eml")) == [
        "# Office move",
        "From: Facilities <facilities@example.com>  ",
        "To: all-staff@example.com  ",
        "Date: Mon, 23 Nov 2026 09:30:00 +0100",
        "We move to the fourth floor on 1 December.",
    ]


@pytest.mark.parametrize("kind", ["doc", "odt", "rtf"])
def test_older_and_open_text_formats_are_converted_by_libreoffice_with_their_headings(upload, kind: str) -> None:
    markdown = parse(upload, converted(refund_policy_docx(), "docx", kind), kind)
    assert lines_of(markdown)[:4] == [
        "# Refund Policy",
        "This policy explains how customers get their money back.",
        "## Eligibility",
        "Customers can request a full refund within 30 days of purchase.",
    ]


@pytest.mark.parametrize("kind", ["odp", "ppt"])
def test_open_and_older_presentations_are_converted_by_libreoffice_slide_by_slide(upload, kind: str) -> None:
    deck = odp_bytes(("Visitors", "Visitors park on level minus two."), ("Badges", "Collect badges at reception."))
    content = deck if kind == "odp" else converted(deck, "odp", kind)
    assert lines_of(parse(upload, content, kind)) == [
        "# Visitors",
        "Visitors park on level minus two.",
        "# Badges",
        "Collect badges at reception.",
    ]


def test_a_file_libreoffice_cannot_read_is_a_parse_error_naming_the_kind(upload) -> None:
    with pytest.raises(ParseError, match="the RTF file could not be read"):
        parse(upload, b"{\\rtf1" + bytes(range(256)) * 4, "rtf")


@pytest.mark.parametrize("kind", ["docx", "pptx", "xlsx"])
def test_corrupt_office_file_is_a_parse_error_naming_the_kind(upload, kind: str) -> None:
    with pytest.raises(ParseError, match=f"the {kind.upper()} file could not be read"):
        parse(upload, corrupt_docx(), kind)


def test_truncated_docx_is_a_parse_error(upload) -> None:
    content = refund_policy_docx()
    with pytest.raises(ParseError, match="the DOCX file could not be read"):
        parse(upload, content[: len(content) // 2], "docx")


def test_zip_without_a_document_inside_is_a_parse_error(upload) -> None:
    with pytest.raises(ParseError, match="DOCX"):
        parse(upload, fake_zip({"notes.txt": b"hello"}), "docx")


def test_broken_csv_is_a_parse_error(upload) -> None:
    with pytest.raises(ParseError, match="the CSV file could not be read"):
        parse(upload, b'a,b\n"never closed,1\n', "csv")


@pytest.mark.parametrize("kind", sorted(SUPPORTED_KINDS))
def test_empty_file_is_an_empty_document(upload, kind: str) -> None:
    with pytest.raises(EmptyDocument):
        parse(upload, b"", kind)


@pytest.mark.parametrize(
    ("content", "kind"),
    [(b"  \n\t\n", "txt"), (b"\n\n", "md"), (b"<html><body> <p> </p></body></html>", "html")],
)
def test_whitespace_only_is_an_empty_document(upload, content: bytes, kind: str) -> None:
    with pytest.raises(EmptyDocument, match="contains no text"):
        parse(upload, content, kind)


def test_docx_without_text_is_an_empty_document(upload) -> None:
    with pytest.raises(EmptyDocument, match="the DOCX file contains no text"):
        parse(upload, docx_bytes(lambda document: None), "docx")


@pytest.mark.parametrize("kind", ["xls", "exe", ""])
def test_unknown_kind_is_unsupported(upload, kind: str) -> None:
    with pytest.raises(UnsupportedDocument, match="cannot be parsed"):
        parse(upload, b"some bytes", kind)


FRENCH = "Les notes de frais sont remboursées sous 30 jours ; hôtel : 120 € par nuit au plus, déjà taxes comprises."


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16"])
def test_text_and_markdown_in_any_common_encoding_are_read_as_written(upload, encoding: str) -> None:
    assert FRENCH in parse(upload, f"Frais\n\n{FRENCH}\n".encode(encoding), "txt")
    assert FRENCH in parse(upload, f"# Frais\n\n{FRENCH}\n".encode(encoding), "md")
    russian = "Расходы возмещаются в течение 30 дней, гостиница не дороже 120 евро за ночь."
    assert russian in parse(upload, f"Расходы\n\n{russian}\n".encode("cp1251") * 3, "txt")


def test_a_windows_1252_csv_is_read_as_written(upload) -> None:
    markdown = parse(upload, "Ville;Prix\nMâcon;120 €\nSète;95 €\n".encode("cp1252"), "csv")
    assert "Mâcon" in markdown and "120 €" in markdown and "Sète" in markdown


@pytest.mark.parametrize("declared", [True, False])
def test_a_windows_1252_page_is_read_as_written_whether_or_not_it_declares_its_charset(upload, declared) -> None:
    meta = '<meta charset="windows-1252">' if declared else ""
    page = f"<html><head>{meta}<title>Frais</title></head><body><h1>Frais</h1><p>{FRENCH}</p></body></html>"
    assert FRENCH in parse(upload, page.encode("cp1252"), "html")
