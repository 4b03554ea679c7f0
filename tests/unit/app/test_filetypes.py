from __future__ import annotations

import pytest

from app.errors import EmptyDocument, UnsupportedDocument
from app.filetypes import detect_kind
from tests.documents import TRAVEL_POLICY_HTML, corrupt_docx, fake_zip


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
    ],
)
def test_kind_is_judged_by_content_then_extension(filename: str, content: bytes, kind: str) -> None:
    assert detect_kind(filename, content) == kind


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("photo.png", b"\x89PNG\r\n\x1a\n" + bytes(100)),
        ("fake.txt", bytes(range(256))),
        ("latin1.txt", "café".encode("latin-1") * 10),
        ("archive.zip", fake_zip({"a.txt": b"x"})),
        ("text.odt", fake_zip({"mimetype": b"application/vnd.oasis.opendocument.text"})),
        ("broken.zip", corrupt_docx()),
    ],
)
def test_unsupported_content_is_refused_whatever_the_name(filename: str, content: bytes) -> None:
    with pytest.raises(UnsupportedDocument, match=filename):
        detect_kind(filename, content)


def test_empty_or_blank_is_refused() -> None:
    with pytest.raises(EmptyDocument):
        detect_kind("a.txt", b" \n\t ")
