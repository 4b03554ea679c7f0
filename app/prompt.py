"""The grounded prompt: numbered context blocks with their heading paths, then the question."""

from __future__ import annotations

import re
from pathlib import Path

from app.retrieval import RetrievedChunk

PLACEHOLDER = re.compile(r"\{(context|question)\}")


def load_template(path: Path) -> str:
    template = path.read_text(encoding="utf-8")
    for field in ("{context}", "{question}"):
        if field not in template:
            raise ValueError(f"prompt template {path} lacks the {field} placeholder")
    return template


def format_context(chunks: list[RetrievedChunk]) -> str:
    blocks = []
    for number, found in enumerate(chunks, start=1):
        chunk = found.chunk
        heading = f"{chunk.section} ({chunk.filename})" if chunk.section else chunk.filename
        blocks.append(f"[{number}] {heading}\n{chunk.text}")
    return "\n\n".join(blocks)


def build_prompt(template: str, question: str, chunks: list[RetrievedChunk]) -> str:
    # One pass, not str.format: templates and documents may both contain braces.
    values = {"context": format_context(chunks), "question": question.strip()}
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
