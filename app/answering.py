"""Answers a question: retrieve chunks, decide whether they hold an answer, prompt the generator, cite."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from app.config import RetrievalSettings
from app.generation import Generator
from app.prompt import PromptTemplate, build_prompt
from app.retrieval import Filters, RetrievedChunk, Retriever

NO_ANSWER = "The documents do not contain the answer."
# Small models paraphrase the refusal they were asked for ("The document does not contain the answer to...").
REFUSAL = re.compile(r"\b(do|does) not contain the answer\b", re.IGNORECASE)


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[RetrievedChunk]
    timings_ms: dict[str, float] = field(default_factory=dict)


def select_context(chunks: list[RetrievedChunk], settings: RetrievalSettings) -> list[RetrievedChunk]:
    """The chunks worth showing the generator: none when even the best is below the abstention threshold."""
    if not chunks:
        return []
    best = max(found.score for found in chunks)
    if best < settings.score_threshold:
        return []
    return [found for found in chunks if found.score >= best - settings.relative_margin]


def is_refusal(text: str) -> bool:
    return bool(REFUSAL.search(text))


@dataclass(frozen=True)
class Answerer:
    """Everything answering needs, built once at start-up."""

    retriever: Retriever
    generator: Generator
    template: PromptTemplate
    settings: RetrievalSettings

    def answer(self, question: str, top_k: int, filters: Filters | None = None) -> Answer:
        retrieval = self.retriever.search(question, top_k, filters)
        timings = retrieval.timings_ms
        context = select_context(retrieval.chunks, self.settings)
        if not context:
            # Nothing relevant: say so without spending a generation on it.
            return Answer(NO_ANSWER, [], timings)
        started = time.perf_counter()
        text = self.generator.generate(build_prompt(self.template, question, context))
        timings["generate"] = round((time.perf_counter() - started) * 1000, 2)
        if is_refusal(text):
            return Answer(NO_ANSWER, [], timings)
        return Answer(text, context, timings)
