"""Parsing in a child process: the same Markdown as in-process, and a document that takes too long or too much
memory fails alone, with a message, while the worker goes on."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from pathlib import Path

import pytest

from app.errors import ParseError
from ingest.isolation import parse_isolated
from ingest.parsing import ParseOptions, parse_to_markdown
from tests.documents import converted, corrupt_docx, refund_policy_docx

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


def test_a_program_the_parse_started_is_stopped_with_it(tmp_path: Path) -> None:
    """Stopping a parse while LibreOffice converts for it stops LibreOffice too, at once."""
    odt = stored(tmp_path, converted(refund_policy_docx(), "docx", "odt"))

    def conversions() -> set[str]:  # LibreOffice working in a parse child's temporary folder
        return set(
            subprocess.run(["pgrep", "-f", "soffice.*docqa-parse-"], capture_output=True, text=True).stdout.split()
        )

    before, stop = conversions(), threading.Event()

    def stop_once_converting() -> None:
        deadline = time.monotonic() + 60
        while not conversions() - before and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()

    watcher = threading.Thread(target=stop_once_converting)
    watcher.start()
    with pytest.raises(ParseError, match="parsing was stopped"):
        parse_isolated(odt, "odt", ParseOptions(), 60, ROOMY, stop)
    watcher.join()
    deadline = time.monotonic() + 0.5  # killed at once; left alone, the conversion would take a second more
    while conversions() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert conversions() - before == set()
