"""What kind of document an upload is, judged by its bytes first and its extension second."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePath

from app.errors import EmptyDocument, UnsupportedDocument

# Kinds the worker parses (ingest/parsing.py handles each one).
SUPPORTED_KINDS = frozenset({"pdf", "docx", "pptx", "xlsx", "html", "md", "txt", "csv"})

ZIP_KINDS_BY_MEMBER = {"word/document.xml": "docx", "ppt/presentation.xml": "pptx", "xl/workbook.xml": "xlsx"}
TEXT_KINDS_BY_EXTENSION = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".csv": "csv"}
SUPPORTED_LIST = "PDF, DOCX, PPTX, XLSX, HTML, Markdown, CSV and plain text (UTF-8)"


def detect_kind(filename: str, content: bytes) -> str:
    """Return the document kind, or raise UnsupportedDocument / EmptyDocument with a readable reason."""
    if not content.strip():
        raise EmptyDocument(f"{filename} is empty")
    extension = PurePath(filename).suffix.lower()
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"PK\x03\x04"):
        return _zip_kind(filename, extension, content)
    if b"\x00" in content[:8192] or not _is_utf8(content[:65536]):
        raise UnsupportedDocument(f"{filename} is not a supported document type; supported: {SUPPORTED_LIST}")
    kind = TEXT_KINDS_BY_EXTENSION.get(extension)
    if kind:
        return kind
    head = content[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "txt"


def _zip_kind(filename: str, extension: str, content: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        # A damaged archive that claims an office type is accepted; the worker reports why it fails.
        if extension.lstrip(".") in ZIP_KINDS_BY_MEMBER.values():
            return extension.lstrip(".")
        raise UnsupportedDocument(f"{filename} is a damaged ZIP archive, not a supported document") from None
    for member, kind in ZIP_KINDS_BY_MEMBER.items():
        if member in names:
            return kind
    raise UnsupportedDocument(f"{filename} is a ZIP archive, not a supported document; supported: {SUPPORTED_LIST}")


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A sample cut inside a multi-byte character is still text.
        return exc.start >= len(sample) - 3 and len(sample) == 65536
    return True
