from __future__ import annotations

import os

import pytest

from app.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from app.filetypes import OLE_SIGNATURE as OLE
from app.filetypes import UnpackLimits, decode_text, detect_kind, text_encoding
from tests.documents import TRAVEL_POLICY_HTML, corrupt_docx, docx_bomb, fake_zip


@pytest.mark.parametrize(
    ("filename", "content", "kind"),
    [
        ("report.pdf", b"%PDF-1.7\n...", "pdf"),
        ("no_extension", b"%PDF-1.4\n...", "pdf"),
        ("letter.docx", fake_zip({"word/document.xml": b"<w/>"}), "docx"),
        ("renamed.bin", fake_zip({"word/document.xml": b"<w/>"}), "docx"),
        ("deck.pptx", fake_zip({"ppt/presentation.xml": b"<p/>"}), "pptx"),
        ("sheet.xlsx", fake_zip({"xl/workbook.xml": b"<x/>"}), "xlsx"),
        ("page.html", b"<p>hi</p>", "html"),
        ("page.txt", TRAVEL_POLICY_HTML, "html"),
        ("page", TRAVEL_POLICY_HTML, "html"),
        ("notes.md", "# Überschrift\n".encode(), "md"),
        ("data.csv", b"a,b\n1,2\n", "csv"),
        ("notes.txt", b"plain", "txt"),
        ("broken.docx", corrupt_docx(), "docx"),
        ("latin1.txt", "café".encode("latin-1") * 10, "txt"),
        ("windows.csv", "Ville;Prix\nMâcon;30 €\n".encode("cp1252"), "csv"),
        ("utf16.md", "# Titel\n".encode("utf-16"), "md"),
        ("scan.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "png"),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + bytes(100), "jpeg"),
        ("fax.tif", b"II*\x00" + bytes(100), "tiff"),
        ("fax", b"MM\x00*" + bytes(100), "tiff"),
        ("letter.rtf", b"{\\rtf1\\ansi Hello}", "rtf"),
        ("memo.eml", b"From: a@example.com\r\nSubject: Hi\r\n\r\nBody\r\n", "eml"),
        ("saved.txt", b"Received: by mx\n  (continued)\nFrom: a@example.com\n\nBody\n", "eml"),
        ("notes.txt", b"Note: not a header block\nTo do: more\n\nbody", "txt"),
        ("renamed.txt", b"{\\rtf1\\ansi Hello}", "rtf"),
        ("text.odt", fake_zip({"mimetype": b"application/vnd.oasis.opendocument.text"}), "odt"),
        ("slides.odp", fake_zip({"mimetype": b"application/vnd.oasis.opendocument.presentation"}), "odp"),
        ("old.doc", OLE + "WordDocument".encode("utf-16-le") + bytes(100), "doc"),
        ("old.ppt", OLE + "PowerPoint Document".encode("utf-16-le") + bytes(100), "ppt"),
    ],
)
def test_kind_is_judged_by_content_then_extension(filename: str, content: bytes, kind: str) -> None:
    assert detect_kind(filename, content) == kind


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("photo.gif", b"GIF89a" + bytes(100)),
        ("fake.txt", bytes(range(256))),
        ("junk.txt", bytes(range(1, 256)) * 4),  # control characters: binary, though it has no NUL
        ("archive.zip", fake_zip({"a.txt": b"x"})),
        ("sheet.ods", fake_zip({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"})),
        ("old.xls", OLE + "Workbook".encode("utf-16-le") + bytes(100)),
        ("broken.zip", corrupt_docx()),
    ],
)
def test_unsupported_content_is_refused_whatever_the_name(filename: str, content: bytes) -> None:
    with pytest.raises(UnsupportedDocument, match=filename):
        detect_kind(filename, content)


def test_empty_or_blank_is_refused() -> None:
    with pytest.raises(EmptyDocument):
        detect_kind("a.txt", b" \n\t ")


FRENCH = "Les notes de frais sont remboursées sous 30 jours. Hôtel : 120 € par nuit au plus, déjà taxes comprises.\n"
RUSSIAN = "Расходы возмещаются в течение 30 дней. Гостиница: не более 120 евро за ночь.\n"


@pytest.mark.parametrize(
    ("text", "encoding", "found"),
    [
        (FRENCH, "utf-8", "utf-8"),
        (FRENCH, "utf-8-sig", "utf-8-sig"),
        (FRENCH, "cp1252", "cp1252"),
        (FRENCH.replace("€", "EUR"), "latin-1", "cp1252"),  # Latin-1 text reads the same in Windows-1252
        (FRENCH, "utf-16", "utf-16"),
        (RUSSIAN, "cp1251", "cp1251"),
    ],
)
def test_text_in_common_encodings_is_read_as_written(text: str, encoding: str, found: str) -> None:
    content = (text * 3).encode(encoding)
    assert text_encoding(content) == found
    assert decode_text(content) == text * 3


def test_an_office_file_that_would_unpack_to_too_much_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match=r"bomb.docx holds word/document.xml, which unpacks \d+ times"):
        detect_kind("bomb.docx", docx_bomb())
    big = fake_zip({"word/document.xml": b"<w/>", "word/media/a.bin": os.urandom(600_000)})
    with pytest.raises(DocumentTooLarge, match=r"big.docx would unpack to 1 MB, more than the 0 MB allowed"):
        detect_kind("big.docx", big, UnpackLimits(total_bytes=500_000))
    assert detect_kind("big.docx", big) == "docx"  # within the default limits; incompressible media is fine
