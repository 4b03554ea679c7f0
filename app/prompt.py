"""The grounded prompt: numbered context blocks with their heading paths, then the question."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.retrieval import RetrievedChunk

PLACEHOLDER = re.compile(r"\{(context|question)\}")
SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": ...}

# What the prompt asks the generator to reply when no block holds the answer (configs/prompt.txt says it too).
NO_ANSWER = "The documents do not contain the answer."
# Small models paraphrase the refusal they were asked for ("The document does not contain the answer to...").
REFUSAL = re.compile(r"\b(do|does) not contain the answer\b", re.IGNORECASE)


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))


@dataclass(frozen=True)
class PromptTemplate:
    system: str
    user: str


def load_template(path: Path) -> PromptTemplate:
    """Read a template file: a `[system]` section (optional) and a `[user]` section with both placeholders."""
    text = path.read_text(encoding="utf-8")
    parts = SECTION.split(text)
    if len(parts) == 1:  # no section markers: the whole file is the user message
        sections = {"user": text.strip()}
    else:
        sections = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}
    template = PromptTemplate(system=sections.get("system", ""), user=sections.get("user", ""))
    for field in ("{context}", "{question}"):
        if field not in template.user:
            raise ValueError(f"prompt template {path}: the user section lacks the {field} placeholder")
    return template


def format_context(chunks: list[RetrievedChunk]) -> str:
    blocks = []
    for number, found in enumerate(chunks, start=1):
        chunk = found.chunk
        heading = f"{chunk.section} ({chunk.filename})" if chunk.section else chunk.filename
        blocks.append(f"[{number}] {heading}\n{chunk.text}")
    return "\n\n".join(blocks)


def build_prompt(template: PromptTemplate, question: str, chunks: list[RetrievedChunk]) -> list[Message]:
    # One pass, not str.format: templates and documents may both contain braces.
    values = {"context": format_context(chunks), "question": question.strip()}
    user = PLACEHOLDER.sub(lambda m: values[m.group(1)], template.user)
    system = [{"role": "system", "content": template.system}] if template.system else []
    return [*system, {"role": "user", "content": user}]
