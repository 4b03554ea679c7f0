from __future__ import annotations

from pathlib import Path

import pytest

from app.prompt import PromptTemplate, build_prompt, load_template
from app.retrieval import RetrievedChunk
from app.store import Chunk

TEMPLATE = Path(__file__).resolve().parents[3] / "configs" / "prompt.txt"


def found(section: str, text: str, filename: str = "refund.docx") -> RetrievedChunk:
    return RetrievedChunk(Chunk(1, "doc", filename, 0, section, text), 0.9)


def test_blocks_are_numbered_with_heading_paths_and_the_question_comes_last() -> None:
    system, user = build_prompt(
        load_template(TEMPLATE),
        "  How long for refunds? ",
        [found("Refund Policy > Eligibility", "Within 30 days."), found("", "Plain text.", "notes.txt")],
    )
    assert system["role"] == "system"
    assert "only" in system["content"] and "[n]" in system["content"]
    assert "The documents do not contain the answer." in system["content"]
    assert user["role"] == "user"
    assert "[1] Refund Policy > Eligibility (refund.docx)\nWithin 30 days." in user["content"]
    assert "[2] notes.txt\nPlain text." in user["content"]
    assert user["content"].index("[2]") < user["content"].index("Question: How long for refunds?")


def test_braces_in_documents_are_kept_verbatim() -> None:
    template = PromptTemplate(system="", user="{context}\nQ: {question}")
    (user,) = build_prompt(template, "what is {question}?", [found("S", "use {context} here")])
    assert user["content"] == "[1] S (refund.docx)\nuse {context} here\nQ: what is {question}?"


def test_a_file_without_sections_is_the_user_message(tmp_path: Path) -> None:
    plain = tmp_path / "prompt.txt"
    plain.write_text("Blocks:\n{context}\nQ: {question}\n")
    assert load_template(plain) == PromptTemplate(system="", user="Blocks:\n{context}\nQ: {question}")


def test_a_template_without_placeholders_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "prompt.txt"
    bad.write_text("[system]\nBe brief.\n[user]\nAnswer: {question}")
    with pytest.raises(ValueError, match="context"):
        load_template(bad)
