"""Accepting an upload: tags, the bytes kept once under their hash, nothing stored for a refused file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import EmptyDocument, InvalidRequest, UnsupportedDocument
from app.sqlite_store import SQLiteStore
from app.uploads import accept_upload, parse_tags

POLICY = b"# Refunds\n\nRefunds are accepted within 30 days of purchase.\n"


def test_tags_are_trimmed_deduplicated_and_plain() -> None:
    assert parse_tags(" hr, policies,,hr ,2026") == ["hr", "policies", "2026"]
    assert parse_tags(None) == []
    with pytest.raises(InvalidRequest, match="tag '../etc' is not allowed"):
        parse_tags("ok, ../etc")


def test_the_bytes_are_kept_once_and_the_same_bytes_are_the_same_document(tmp_path: Path) -> None:
    settings = Settings().with_data_dir(tmp_path)
    store = SQLiteStore(settings.storage.database_path)
    doc, outcome = accept_upload(store, settings, "refunds.md", POLICY, ["hr"])
    again, outcome_again = accept_upload(store, settings, "copy.md", POLICY, ["legal"])
    assert (outcome, outcome_again) == ("created", "duplicate") and again.id == doc.id
    assert again.tags == ("hr", "legal")
    kept = settings.storage.uploads_dir / hashlib.sha256(POLICY).hexdigest()
    assert kept.read_bytes() == POLICY and [p.name for p in settings.storage.uploads_dir.iterdir()] == [kept.name]


@pytest.mark.parametrize(
    ("filename", "content", "error"),
    [("empty.md", b"", EmptyDocument), ("logo.gif", b"GIF89a" + bytes(64), UnsupportedDocument)],
)
def test_a_refused_file_stores_nothing(tmp_path: Path, filename: str, content: bytes, error: type) -> None:
    settings = Settings().with_data_dir(tmp_path)
    store = SQLiteStore(settings.storage.database_path)
    with pytest.raises(error):
        accept_upload(store, settings, filename, content)
    assert store.list_documents() == [] and not settings.storage.uploads_dir.exists()
