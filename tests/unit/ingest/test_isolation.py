"""Parsing in a child process: the same Markdown as in-process, and a document that takes too long or too much
memory fails alone, with a message, while the worker goes on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from app.errors import ParseError
from ingest.isolation import parse_isolated
from ingest.parsing import ParseOptions, parse_to_markdown
from tests.documents import corrupt_docx, refund_policy_docx

pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
ROOMY = 1_500_000_000


def stored(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / hashlib.sha256(content).hexdigest()
    path.write_bytes(content)
    return path


def test_a_child_parses_as_the_worker_would(tmp_path: Path) -> None:
    docx = stored(tmp_path, refund_policy_docx())
    assert parse_isolated(docx, "docx", ParseOptions(), 60, ROOMY) == parse_to_markdown(docx, "docx")


def test_a_parse_error_in_the_child_is_the_same_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="the DOCX file could not be read"):
        parse_isolated(stored(tmp_path, corrupt_docx()), "docx", ParseOptions(), 60, ROOMY)


def test_a_parse_past_its_time_is_stopped_and_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"longer than 0.001 s \(ingest.parse_timeout_seconds\)"):
        parse_isolated(stored(tmp_path, refund_policy_docx()), "docx", ParseOptions(), 0.001, ROOMY)


def test_a_parse_past_its_memory_is_stopped_and_says_which_setting(tmp_path: Path) -> None:
    # Far below what dedoc itself holds: the first allocation fails (where exactly varies; the message does not).
    with pytest.raises(ParseError, match=r"more than 10 MB \(ingest.parse_memory_bytes\)"):
        parse_isolated(stored(tmp_path, refund_policy_docx()), "docx", ParseOptions(), 60, 10_000_000)
