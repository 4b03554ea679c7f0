"""Accepting an uploaded file: check it, keep its bytes, record the document and queue its ingestion."""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from app.config import Settings
from app.filetypes import UnpackLimits, detect_kind
from app.store import DEFAULT_COLLECTION, Document, Store, UploadOutcome, checked_label

log = logging.getLogger(__name__)


def parse_tags(raw: str | None) -> list[str]:
    """'hr, policies,,2026' -> ['hr', 'policies', '2026']; each tag short and plain."""
    tags = [checked_label("tag", tag.strip()) for tag in (raw or "").split(",") if tag.strip()]
    return list(dict.fromkeys(tags))


def parse_collection(raw: str | None) -> str:
    return checked_label("collection", (raw or "").strip() or DEFAULT_COLLECTION)


def accept_upload(
    store: Store,
    settings: Settings,
    filename: str,
    content: bytes,
    tags: Sequence[str] = (),
    document_id: str | None = None,
    collection: str = DEFAULT_COLLECTION,
) -> tuple[Document, UploadOutcome]:
    """Record the file as a new document of `collection`, or a new version of `document_id` (default: of the
    collection's document with its name). Raises EmptyDocument or UnsupportedDocument (storing nothing),
    DocumentNotFound, Conflict."""
    server = settings.server
    kind = detect_kind(filename, content, UnpackLimits(server.max_unpacked_bytes, server.max_unpack_ratio))
    sha256 = hashlib.sha256(content).hexdigest()
    _write_once(settings.storage.uploads_dir / sha256, content)
    if document_id is None:
        doc, outcome = store.add_document(filename, kind, sha256, len(content), tags, collection)
    else:
        doc, outcome = store.add_version(document_id, filename, kind, sha256, len(content))
    size = len(content)
    log.info("document %s: %s: %s (%s, %d bytes), version %d", doc.id, outcome, filename, kind, size, doc.version)
    return doc, outcome


def email_attachments(filename: str, content: bytes) -> list[tuple[str, bytes]]:
    """The files attached to an e-mail, each named after the e-mail and itself ("offsite.eml - agenda.pdf", so
    that its extension still counts); the e-mail's text bodies are its own document."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    attached = []
    for number, part in enumerate(message.walk(), start=1):
        if part.is_multipart() or part.get_content_disposition() != "attachment":
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and data.strip():
            attached.append((f"{filename} - {part.get_filename() or f'attachment-{number}'}", data))
    return attached


def _write_once(path: Path, content: bytes) -> None:
    """Write the bytes durably under their hash; the same bytes are already there otherwise."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with temp.open("wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
