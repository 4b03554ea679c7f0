from __future__ import annotations

from pathlib import Path

import pytest

from app.prompt import build_prompt, load_template
from app.retrieval import RetrievedChunk
from app.store import Chunk

TEMPLATE = Path(__file__).resolve().parents[3] / "configs" / "prompt.txt"


def found(section: str, text: str, filename: str = "refund.docx") -> RetrievedChunk:
    return RetrievedChunk(Chunk(1, "doc", filename, 0, section, text), 0.9)


def test_blocks_are_numbered_with_heading_paths_and_the_question_comes_last() -> None:
    prompt = build_prompt(
        load_template(TEMPLATE),
        "  How long for refunds? ",
        [found("Refund Policy > Eligibility", "Within 30 days."), found("", "Plain text.", "notes.txt")],
    )
    assert "[1] Refund Policy > Eligibility (refund.docx)\nWithin 30 days." in prompt
    assert "[2] notes.txt\nPlain text." in prompt
    assert prompt.index("[2]") < prompt.index("Question: How long for refunds?")
    assert "only" in prompt and "do not contain the answer" in prompt


def test_braces_in_documents_are_kept_verbatim() -> None:
    prompt = build_prompt("{context}\nQ: {question}", "what is {question}?", [found("S", "use {context} here")])
    assert prompt == "[1] S (refund.docx)\nuse {context} here\nQ: what is {question}?"


def test_a_template_without_placeholders_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "prompt.txt"
    bad.write_text("Answer: {question}")
    with pytest.raises(ValueError, match="context"):
        load_template(bad)
