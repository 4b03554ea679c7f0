"""Answering without models: a scripted generator, so verification, quotes and abstention are seen directly."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from app.answering import (
    Answer,
    Answerer,
    abstention_score,
    clean_question,
    select_context,
    standalone_question,
)
from app.config import AnswerSettings, RetrievalSettings
from app.errors import InvalidRequest
from app.prompt import NO_ANSWER, Message, PromptTemplate, is_refusal
from app.retrieval import Retrieval, RetrievedChunk
from app.store import Chunk

TEMPLATE = PromptTemplate(system="Answer from the blocks.", user="{context}\n\nQuestion: {question}")
REFUNDS = RetrievedChunk(
    Chunk(1, "d1", "refunds.md", 0, "Refunds", "Refunds are accepted within 30 days of purchase. Keep the receipt."),
    0.8,
)
QUESTION = "How many days do I have to ask for a refund?"


class ScriptedGenerator:
    """Streams a fixed reply in three-character pieces, as a real generator streams tokens."""

    model_name = "scripted"
    adapters = ()

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.refusal_floor_factors: list[float] = []

    def generate(self, messages: list[Message], adapter: str | None = None) -> str:
        return self.reply

    def stream(
        self,
        messages: list[Message],
        stop: threading.Event | None = None,
        adapter: str | None = None,
        refusal_floor_factor: float = 1.0,
    ) -> Iterator[str]:
        self.refusal_floor_factors.append(refusal_floor_factor)
        return iter([self.reply[i : i + 3] for i in range(0, len(self.reply), 3)])


def embed(texts: list[str]) -> np.ndarray:
    return np.ones((len(texts), 2)) / np.sqrt(2)


def answerer(
    reply: str, verify: str = "strict", quote_over_refusal: float | None = None, **retrieval: object
) -> Answerer:
    return Answerer(
        retriever=SimpleNamespace(embedder=SimpleNamespace(embed=embed)),  # only its embedder is used here
        generator=ScriptedGenerator(reply),
        template=TEMPLATE,
        settings=RetrievalSettings(**retrieval),
        answer_settings=AnswerSettings(verify=verify, quote_over_refusal=quote_over_refusal),
    )


def ask(answering: Answerer, chunks: list[RetrievedChunk] | None = None) -> tuple[str, Answer]:
    stream = answering.stream_from(QUESTION, Retrieval([REFUNDS] if chunks is None else chunks))
    streamed = "".join(stream)
    return streamed, stream.finish()


@pytest.mark.parametrize("verify", ["strict", "quote", "off"])
def test_a_supported_answer_is_kept_with_its_evidence_quote(verify: str) -> None:
    streamed, answer = ask(answerer("Within 30 days [1].", verify))
    assert streamed == answer.text == "Within 30 days [1]."
    assert answer.verified and answer.generated is None
    quote = answer.quotes[1]
    assert quote.text == "Refunds are accepted within 30 days of purchase."
    assert REFUNDS.chunk.text[quote.start : quote.end] == quote.text


def test_strict_replaces_an_invented_number_with_the_refusal() -> None:
    streamed, answer = ask(answerer("Within 45 days [1].", "strict"))
    assert streamed == "Within 45 days [1]."  # the tokens stream as generated ...
    assert (answer.text, answer.verified, answer.citations) == (NO_ANSWER, False, [])  # ... the answer is checked
    assert answer.generated == "Within 45 days [1]."


def test_quote_replaces_an_invented_number_with_the_best_block_sentence() -> None:
    _, answer = ask(answerer("Within 45 days [1].", "quote"))
    assert answer.text == "Refunds are accepted within 30 days of purchase. [1]"
    assert not answer.verified and answer.citations == [REFUNDS]


def test_off_returns_the_answer_as_generated_but_flags_it() -> None:
    _, answer = ask(answerer("Within 45 days [1].", "off"))
    assert (answer.text, answer.verified) == ("Within 45 days [1].", False)


def test_a_refusal_of_the_generator_is_the_refusal_sentence() -> None:
    _, answer = ask(answerer("The document does not contain the answer to that."))
    assert (answer.text, answer.citations) == (NO_ANSWER, [])


def test_below_the_threshold_nothing_is_generated() -> None:
    streamed, answer = ask(answerer("Within 30 days [1].", score_threshold=0.9))
    assert streamed == answer.text == NO_ANSWER


def test_word_coverage_lifts_a_low_similarity_that_names_the_question_terms() -> None:
    weak = RetrievedChunk(REFUNDS.chunk, 0.30)
    question = "refunds accepted days purchase"
    cosine_only = RetrievalSettings(score_threshold=0.4, coverage_weight=0.0)
    mixed = RetrievalSettings(score_threshold=0.4, coverage_weight=0.5)
    assert abstention_score([weak], question, cosine_only) == pytest.approx(0.30)
    assert abstention_score([weak], question, mixed) == pytest.approx(0.5 * 0.30 + 0.5 * 1.0)
    assert select_context([weak], question, cosine_only) == []
    assert select_context([weak], question, mixed) == [weak]
    assert abstention_score([weak], "quarterly bonus payout schedule", mixed) == pytest.approx(0.15)


def test_the_better_the_blocks_match_the_surer_a_refusal_must_be() -> None:
    generator = ScriptedGenerator("Within 30 days [1].")
    weak = RetrievedChunk(Chunk(2, "d2", "other.md", 0, "Other", "Something else entirely."), 0.5)
    answering = Answerer(
        retriever=SimpleNamespace(embedder=SimpleNamespace(embed=embed)),
        generator=generator,
        template=TEMPLATE,
        settings=RetrievalSettings(score_threshold=0.4),
        answer_settings=AnswerSettings(refusal_cosine_weight=2.0),
    )
    ask(answering, [weak, REFUNDS])  # the best block's cosine is 0.8: the floor is raised by exp(2 * (0.8 - 0.4))
    ask(answering, [weak])  # 0.5: by exp(2 * 0.1)
    assert generator.refusal_floor_factors == pytest.approx([math.exp(0.8), math.exp(0.2)])
    alone = AnswerSettings(refusal_cosine_weight=0)
    assert replace(answering, answer_settings=alone).refusal_floor_factor([REFUNDS]) == 1.0  # the floor alone


def test_a_refusal_over_a_block_retrieval_is_sure_of_becomes_its_best_quote() -> None:
    refusal = "The documents do not contain the answer."
    _, sure = ask(answerer(refusal, quote_over_refusal=0.7))  # the block's similarity is 0.8
    assert sure.text == "Refunds are accepted within 30 days of purchase. [1]"
    assert (sure.verified, sure.generated, sure.citations) == (False, refusal, [REFUNDS])
    _, unsure = ask(answerer(refusal, quote_over_refusal=0.9))
    assert (unsure.text, unsure.citations) == (NO_ANSWER, [])


def test_a_follow_up_is_searched_with_the_last_two_earlier_questions() -> None:
    earlier = ["What is the refund window?", "  ", "And for gift cards?", "Who approves it?"]
    assert standalone_question(" And abroad? ", earlier) == "And for gift cards? Who approves it? And abroad?"
    assert standalone_question("Refunds?", []) == "Refunds?"


@pytest.mark.parametrize(
    ("question", "message"), [("  ", "the question is empty"), ("x" * 11, "longer than 10 characters")]
)
def test_an_empty_or_overlong_question_is_refused(question: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        clean_question(question, max_chars=10)


def test_paraphrased_refusals_count_as_refusals() -> None:
    assert is_refusal("The document does not contain the answer to that.")
    assert not is_refusal("Refunds are accepted within 30 days [1].")


def test_the_stream_reads_what_was_not_read_before_it_finishes() -> None:
    stream = answerer("Within 30 days [1].").stream_from(QUESTION, Retrieval([REFUNDS]))
    first = next(iter(stream))
    answer = stream.finish()
    assert first == "Wit" and answer.text == "Within 30 days [1]." and stream.context == [REFUNDS]
