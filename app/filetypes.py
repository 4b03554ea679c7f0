"""What kind of document an upload is, judged by its bytes first and its extension second."""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

import charset_normalizer

from app.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument

# Kinds the worker parses (ingest/parsing.py handles each one).
IMAGE_KINDS = frozenset({"png", "jpeg", "tiff"})  # read by OCR
CONVERTED_KINDS = frozenset({"doc", "rtf", "odt", "ppt", "odp"})  # converted by LibreOffice
TEXT_KINDS = frozenset({"html", "md", "txt", "csv", "eml"})
SUPPORTED_KINDS = frozenset({"pdf", "docx", "pptx", "xlsx"}) | TEXT_KINDS | IMAGE_KINDS | CONVERTED_KINDS
IMAGE_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpeg", b"II*\x00": "tiff", b"MM\x00*": "tiff"}

ZIP_KINDS_BY_MEMBER = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
ODF_KINDS = {"application/vnd.oasis.opendocument.text": "odt", "application/vnd.oasis.opendocument.presentation": "odp"}
# Word and PowerPoint 97-2003 files are OLE compound files; the name of their main stream tells them apart.
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
OLE_KINDS_BY_STREAM = {"WordDocument".encode("utf-16-le"): "doc", "PowerPoint Document".encode("utf-16-le"): "ppt"}
TEXT_KINDS_BY_EXTENSION = {
    ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".csv": "csv", ".eml": "eml",
}  # fmt: skip
# An e-mail saved as a file starts with its header fields; "From:" among them tells it from other text.
EMAIL_HEADER = re.compile(rb"^(?:[A-Za-z][A-Za-z0-9-]*:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)+\r?\n")
EMAIL_FIELDS = re.compile(rb"^From:", re.IGNORECASE | re.MULTILINE)
SUPPORTED_LIST = (
    "PDF, DOCX, DOC, ODT, RTF, PPTX, PPT, ODP, XLSX, HTML, Markdown, CSV, plain text, e-mail (.eml), and PNG, JPEG"
    " and TIFF images of text"
)
SAMPLE_BYTES = 65536  # what the encoding of a text file is judged by
# UTF-32 before UTF-16: the UTF-32-LE mark starts with UTF-16-LE's.
BOMS = [
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
# Control characters no text file holds (tab, line breaks and form feed are fine).
BINARY_CONTROLS = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\n\r\f")
# Western European text is mostly ASCII letters with some accented ones; Cyrillic or Greek read as
# Windows-1252 is almost all accented "letters".
WESTERN_MAX_ACCENTED = 0.3


@dataclass(frozen=True)
class UnpackLimits:
    total_bytes: int = 200_000_000  # all members of an archive, unpacked
    ratio: float = 100  # unpacked / packed size of one large member
    large_member_bytes: int = 1_000_000  # small members may compress well (blank XML) without being a bomb


def detect_kind(filename: str, content: bytes, limits: UnpackLimits | None = None) -> str:
    """Return the document kind, or raise UnsupportedDocument / EmptyDocument / DocumentTooLarge with a readable
    reason; an office file (a ZIP archive) must stay within `limits` when unpacked."""
    if not content.strip():
        raise EmptyDocument(f"{filename} is empty")
    extension = PurePath(filename).suffix.lower()
    if content.startswith(b"%PDF-"):
        return "pdf"
    image = next((kind for signature, kind in IMAGE_SIGNATURES.items() if content.startswith(signature)), None)
    if image:
        return image
    if content.startswith(b"{\\rtf"):
        return "rtf"
    if content.startswith(OLE_SIGNATURE):
        ole = next((kind for stream, kind in OLE_KINDS_BY_STREAM.items() if stream in content), None)
        if ole:
            return ole
        raise UnsupportedDocument(
            f"{filename} is an Office 97-2003 file other than DOC or PPT; supported: {SUPPORTED_LIST}"
        )
    if content.startswith(b"PK\x03\x04"):
        return _zip_kind(filename, extension, content, limits or UnpackLimits())
    if text_encoding(content[:SAMPLE_BYTES]) is None:
        raise UnsupportedDocument(f"{filename} is not a supported document type; supported: {SUPPORTED_LIST}")
    kind = TEXT_KINDS_BY_EXTENSION.get(extension)
    if kind:
        return kind
    head = content[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    if (headers := EMAIL_HEADER.match(content[:SAMPLE_BYTES])) and EMAIL_FIELDS.search(headers.group(0)):
        return "eml"
    return "txt"


def _zip_kind(filename: str, extension: str, content: bytes, limits: UnpackLimits) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = archive.infolist()
            names = {member.filename for member in members}
            # An OpenDocument file names its type in a small first member, "mimetype".
            small = "mimetype" in names and archive.getinfo("mimetype").file_size < 200
            mimetype = archive.read("mimetype").decode("ascii", "replace").strip() if small else ""
    except (zipfile.BadZipFile, OSError):
        # A damaged archive that claims an office type is accepted; the worker reports why it fails.
        if extension.lstrip(".") in {*ZIP_KINDS_BY_MEMBER.values(), *ODF_KINDS.values()}:
            return extension.lstrip(".")
        raise UnsupportedDocument(f"{filename} is a damaged ZIP archive, not a supported document") from None
    _check_unpacked_size(filename, members, limits)
    for member, kind in ZIP_KINDS_BY_MEMBER.items():
        if member in names:
            return kind
    if mimetype in ODF_KINDS:
        return ODF_KINDS[mimetype]
    raise UnsupportedDocument(f"{filename} is a ZIP archive, not a supported document; supported: {SUPPORTED_LIST}")


def text_encoding(sample: bytes) -> str | None:
    """The encoding the text in `sample` (a file's first SAMPLE_BYTES) is written in; None when it is not text.

    UTF-8 and byte-order-marked UTF-16/32 first; then Windows-1252 (Latin-1's superset) for text that reads as a
    Western European language; then charset-normalizer's guess (Cyrillic, Greek...). NUL bytes without a
    byte-order mark, or control characters, mean binary."""
    for bom, encoding in BOMS:
        if sample.startswith(bom):
            return encoding
    if b"\x00" in sample[:8192]:
        return None
    if _is_utf8(sample):
        return "utf-8"
    western = sample.decode("cp1252", errors="replace")
    if sum(char in BINARY_CONTROLS for char in western) > len(western) / 100:
        return None
    letters = [char for char in western if char.isalpha()]
    if sum(not char.isascii() for char in letters) <= WESTERN_MAX_ACCENTED * len(letters):
        return "cp1252"
    guess = charset_normalizer.from_bytes(sample).best()
    return guess.encoding if guess is not None else "cp1252"


def decode_text(content: bytes) -> str:
    """`content` as text in the encoding `text_encoding` finds (undecodable bytes replaced), without a BOM."""
    return content.decode(text_encoding(content[:SAMPLE_BYTES]) or "utf-8", errors="replace").removeprefix("\ufeff")


def _check_unpacked_size(filename: str, members: list[zipfile.ZipInfo], limits: UnpackLimits) -> None:
    """The sizes the archive declares: a parser would unpack that much (a declared size that lies is caught by
    zipfile itself when the member is read)."""
    total = sum(member.file_size for member in members)
    if total > limits.total_bytes:
        raise DocumentTooLarge(
            f"{filename} would unpack to {total / 1e6:.0f} MB, more than the {limits.total_bytes / 1e6:.0f} MB "
            "allowed (server.max_unpacked_bytes); split the document"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > limits.large_member_bytes and ratio > limits.ratio:
            raise UnsupportedDocument(
                f"{filename} holds {member.filename}, which unpacks {ratio:.0f} times ({member.file_size / 1e6:.0f} "
                f"MB): far more than documents do (limit {limits.ratio:g}x, server.max_unpack_ratio); it looks "
                "like a zip bomb and is not parsed"
            )


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A sample cut inside a multi-byte character is still text.
        return exc.start >= len(sample) - 3 and len(sample) == SAMPLE_BYTES
    return True
