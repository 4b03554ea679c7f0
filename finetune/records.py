"""The records the fine-tuning steps hand to each other, and their JSONL files."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from app.prompt import Message

Record = TypeVar("Record")

KnowledgeLabel = Literal["HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"]
ExampleKind = Literal["oracle", "no_oracle"]


@dataclass(frozen=True)
class QAPair:
    """A question with its gold answer; `source` is the file name of the document that holds it."""

    question: str
    answer: str
    source: str | None = None
    id: str = ""


@dataclass(frozen=True)
class ProbeResult:
    """What the base model knows closed-book (Gekhman et al. 2024): greedy and sampled answers."""

    id: str
    question: str
    answer: str
    label: KnowledgeLabel
    greedy_correct: bool
    sampled_correct: float  # share of the N sampled answers that were correct


@dataclass(frozen=True)
class Example:
    """One training or evaluation example in the /ask prompt format, and the answer to learn."""

    id: str
    messages: list[Message]  # system + user, built with app.prompt.build_prompt
    target: str  # the assistant reply: the answer citing [n], or the no-answer sentence
    kind: ExampleKind
    oracle_blocks: list[int] = field(default_factory=list)  # 1-based block numbers holding the answer
    label: KnowledgeLabel | None = None


def write_jsonl(path: Path, records: Iterable[DataclassInstance]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")
            count += 1
    return count


def read_jsonl(path: Path, kind: type[Record]) -> list[Record]:
    with path.open(encoding="utf-8") as f:
        return [kind(**json.loads(line)) for line in f if line.strip()]
