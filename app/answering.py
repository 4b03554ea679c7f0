"""Answers a question: retrieve chunks, decide whether they hold an answer, prompt the generator, cite."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from app.config import AnswerSettings, RetrievalSettings
from app.errors import InvalidRequest
from app.generation import Generator, check_adapter
from app.lexical import coverage
from app.prompt import NO_ANSWER, PromptTemplate, build_prompt, is_refusal
from app.quotes import Embed, Quote, best_quotes
from app.retrieval import Filters, Retrieval, RetrievedChunk, Retriever
from app.verification import drop_repeated_sentences, recited, verify

log = logging.getLogger(__name__)

# How many earlier questions of a conversation make a follow-up standalone (see standalone_question).
FOLLOW_UP_TURNS = 2


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[RetrievedChunk]  # the blocks the generator read, numbered [1], [2]... as in the text
    timings_ms: dict[str, float] = field(default_factory=dict)
    verified: bool = (
        True  # False: the generated text was not backed by its blocks (and, unless verify is off, replaced)
    )
    quotes: dict[int, Quote] = field(default_factory=dict)  # block number -> its best-supporting sentence
    generated: str | None = None  # what the generator wrote, when `text` replaced it


AnswerObserver = Callable[[Answer, int], None]  # sees each finished answer and how many pieces were generated


class AnswerStream:
    """One answer in the making: the blocks the generator reads, its text in pieces as they are generated
    (iterate), then the finished, verified Answer (`finish`, which first reads whatever was not read)."""

    def __init__(
        self,
        context: list[RetrievedChunk],
        tokens: Iterator[str],
        finish: Callable[[str], Answer],
        observe: AnswerObserver | None = None,
    ) -> None:
        self.context = context
        self._tokens = tokens
        self._finish = finish
        self._observe = observe
        self._pieces: list[str] = []

    def __iter__(self) -> Iterator[str]:
        for piece in self._tokens:
            self._pieces.append(piece)
            yield piece

    def finish(self) -> Answer:
        for _ in self:
            pass
        answer = self._finish("".join(self._pieces))
        if self._observe is not None:
            self._observe(answer, len(self._pieces))
        return answer

    def close(self) -> None:
        """End the generation early (the reader went away)."""
        close = getattr(self._tokens, "close", None)
        if close is not None:
            close()


def abstention_score(chunks: list[RetrievedChunk], question: str, settings: RetrievalSettings) -> float:
    """How likely the chunks answer the question: the best cosine, mixed with the question's word coverage."""
    best = max((found.score for found in chunks), default=-1.0)
    if settings.coverage_weight == 0 or not chunks:
        return best
    covered = coverage(question, [f"{found.chunk.section} {found.chunk.text}" for found in chunks])
    return (1 - settings.coverage_weight) * best + settings.coverage_weight * covered


def select_context(chunks: list[RetrievedChunk], question: str, settings: RetrievalSettings) -> list[RetrievedChunk]:
    """The chunks worth showing the generator: none when the abstention score is below the threshold."""
    if not chunks or abstention_score(chunks, question, settings) < settings.score_threshold:
        return []
    best = max(found.score for found in chunks)
    return [found for found in chunks if found.score >= best - settings.relative_margin]


def clean_question(question: str, max_chars: int) -> str:
    question = question.strip()
    if not question:
        raise InvalidRequest("the question is empty")
    if len(question) > max_chars:
        raise InvalidRequest(f"the question is longer than {max_chars} characters")
    return question


def standalone_question(question: str, earlier_questions: Sequence[str]) -> str:
    """A follow-up ("And for gift cards?") made searchable: the last earlier questions, then this one.

    Deliberately simple and deterministic (no model rewrites it): the earlier questions lend the
    follow-up their topic words, at the cost of some noise when the topic changes."""
    recent = [q.strip() for q in earlier_questions if q.strip()][-FOLLOW_UP_TURNS:]
    return " ".join([*recent, question.strip()])


@dataclass(frozen=True)
class Answerer:
    """Everything answering needs, built once at start-up."""

    retriever: Retriever
    generator: Generator
    template: PromptTemplate
    settings: RetrievalSettings
    answer_settings: AnswerSettings = field(default_factory=AnswerSettings)
    observe: AnswerObserver | None = None  # the API's metrics

    def answer(self, question: str, top_k: int, filters: Filters | None = None, adapter: str | None = None) -> Answer:
        return self.stream(question, top_k, filters, adapter=adapter).finish()

    def check_adapter(self, adapter: str | None) -> None:
        """AdapterNotFound for a name the generator does not hold: routes call it before anything starts."""
        check_adapter(adapter, self.generator.adapters)

    def stream(
        self,
        question: str,
        top_k: int,
        filters: Filters | None = None,
        stop: threading.Event | None = None,
        adapter: str | None = None,
    ) -> AnswerStream:
        """Retrieve now; generate as the stream is read. Setting `stop` ends the generation early (a client
        went away). `adapter` names one of the generator's adapters; None is its default."""
        return self.stream_from(question, self.retriever.search(question, top_k, filters), stop, adapter)

    def stream_from(
        self, question: str, retrieval: Retrieval, stop: threading.Event | None = None, adapter: str | None = None
    ) -> AnswerStream:
        """`stream` for chunks already retrieved (the eval retrieves once for its metrics and the answer)."""
        timings = retrieval.timings_ms
        context = select_context(retrieval.chunks, question, self.settings)
        if not context:
            # Nothing relevant: say so without spending a generation on it.
            return AnswerStream([], iter([NO_ANSWER]), lambda _: Answer(NO_ANSWER, [], timings), self.observe)
        started = time.perf_counter()
        prompt = build_prompt(self.template, question, context)
        tokens = self.generator.stream(prompt, stop, adapter, self.refusal_floor_factor(context))

        def finish(generated: str) -> Answer:
            timings["generate"] = round((time.perf_counter() - started) * 1000, 2)
            text = drop_repeated_sentences(generated)
            if is_refusal(text):
                return self._declined(question, text, context, timings)
            checking = time.perf_counter()
            embed = self.retriever.embedder.embed
            answer = checked_answer(question, text, context, timings, self.answer_settings, embed)
            timings["verify"] = round((time.perf_counter() - checking) * 1000, 2)
            return answer

        return AnswerStream(context, tokens, finish, self.observe)

    def refusal_floor_factor(self, context: list[RetrievedChunk]) -> float:
        """How much surer than generator.min_refusal_probability the reader must be to decline (answer.
        refusal_cosine_weight): the refusal's probability and the best cosine together tell answerable questions
        from the rest better than either alone (README, "Answer quality")."""
        best = max(found.score for found in context)
        return math.exp(self.answer_settings.refusal_cosine_weight * (best - self.settings.score_threshold))

    def _declined(self, question: str, text: str, context: list[RetrievedChunk], timings: dict[str, float]) -> Answer:
        """The generator's refusal, unless retrieval is sure enough (answer.quote_over_refusal) that a block
        answers: then that block's best sentence, marked unverified, since the reader declined."""
        floor = self.answer_settings.quote_over_refusal
        if floor is None or abstention_score(context, question, self.settings) < floor:
            return Answer(NO_ANSWER, [], timings)
        return quoted_answer(question, text, context, timings, self.retriever.embedder.embed)


def checked_answer(
    question: str,
    text: str,
    context: list[RetrievedChunk],
    timings: dict[str, float],
    settings: AnswerSettings,
    embed: Embed | None,
) -> Answer:
    """The generated text verified against its blocks (answer.verify), with an evidence quote per cited block."""
    blocks = [found.chunk.text for found in context]
    verdict = verify(text, question, blocks, settings.min_overlap)
    if not verdict.supported and settings.verify != "off":
        text, verdict = recited(text, question, blocks, settings.min_overlap) or (text, verdict)
    if verdict.supported or settings.verify == "off":
        quotes = best_quotes(question, text, blocks, verdict.cited_blocks, embed) if settings.quotes else {}
        return Answer(text, context, timings, verdict.supported, quotes)
    log.info("answer %r not backed by its blocks (%s): verify=%s", text, "; ".join(verdict.problems), settings.verify)
    if settings.verify == "strict":
        return Answer(NO_ANSWER, [], timings, False, generated=text)
    return quoted_answer(question, text, context, timings, embed)


def quoted_answer(
    question: str, text: str, context: list[RetrievedChunk], timings: dict[str, float], embed: Embed | None
) -> Answer:
    """The sentence of any block that best answers the question, standing in (unverified) for the generated
    `text`; the refusal when no block has a sentence to offer."""
    blocks = [found.chunk.text for found in context]
    candidates = best_quotes(question, "", blocks, range(1, len(blocks) + 1), embed)
    if not candidates:
        return Answer(NO_ANSWER, [], timings, False, generated=text)
    quote = max(candidates.values(), key=lambda q: q.score)
    return Answer(f"{quote.text} [{quote.block}]", context, timings, False, {quote.block: quote}, text)
