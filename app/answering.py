"""Answers a question: embed it, retrieve chunks, build the grounded prompt, generate, cite."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from app.config import RetrievalSettings
from app.embedding import Embedder
from app.generation import Generator
from app.index import LiveIndex
from app.prompt import PromptTemplate, build_prompt
from app.retrieval import RetrievedChunk, retrieve
from app.store import Store

NO_ANSWER = "The documents do not contain the answer."
# Small models paraphrase the refusal they were asked for ("The document does not contain the answer to...").
REFUSAL = re.compile(r"\b(do|does) not contain the answer\b", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[RetrievedChunk]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Answerer:
    """Everything answering needs, built once at start-up."""

    embedder: Embedder
    index: LiveIndex
    store: Store
    generator: Generator
    template: PromptTemplate
    retrieval: RetrievalSettings

    def answer(self, question: str, top_k: int) -> Answer:
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = round((now - clock) * 1000, 2)
            clock = now

        vector = self.embedder.embed([question])[0]
        lap("embed")
        chunks = retrieve(vector, self.index, self.store, top_k, self.retrieval)
        lap("search")
        if not chunks:
            # Nothing relevant: say so without spending a generation on it.
            return Answer(NO_ANSWER, [], timings)
        text = self.generator.generate(build_prompt(self.template, question, chunks))
        lap("generate")
        if is_refusal(text):
            return Answer(NO_ANSWER, [], timings)
        return Answer(text, chunks, timings)


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))
