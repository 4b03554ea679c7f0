from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.config import GeneratorSettings, StorageSettings
from app.generation.transformers_backend import TransformersGenerator
from app.prompt import NO_ANSWER, Message, build_prompt, load_template
from app.retrieval import RetrievedChunk
from app.store import Chunk
from finetune.evaluate import cited_blocks, cites_only, evaluate_examples, gold_answer, strip_citations
from finetune.records import Example, QAPair

ROOT = Path(__file__).resolve().parents[3]
METRICS = ["answer_f1", "exact_match", "citation_accuracy", "oracle_refusal_rate", "refusal_accuracy"]
GENERAL = [QAPair("What is the capital of France?", "Paris"), QAPair("What is the largest planet?", "Jupiter")]


class CannedGenerator:
    """Replies to the last message's text with a canned reply: enough to check the metrics' arithmetic."""

    model_name = "canned"
    adapters = ()

    def __init__(self, replies: dict[str, str]) -> None:
        self.replies = replies

    def generate(self, messages: list[Message]) -> str:
        return self.replies[messages[-1]["content"]]


def example(id: str, target: str, kind: str = "oracle", oracle_blocks: list[int] | None = None) -> Example:
    messages = [{"role": "system", "content": "Answer from the blocks."}, {"role": "user", "content": id}]
    return Example(id, messages, target, kind, oracle_blocks or [], None)  # type: ignore[arg-type]


EXAMPLES = [
    example("right", "Refunds are accepted within 30 days [2].", oracle_blocks=[2]),
    example("wrong-block", "Passwords need 12 characters [1].", oracle_blocks=[1]),
    example("extra-block", "Meals are paid up to 40 euros [3].", oracle_blocks=[3]),
    example("refused", "Laptops are replaced every 4 years [2].", oracle_blocks=[2]),
    example("declined", NO_ANSWER, kind="no_oracle"),
    example("guessed", NO_ANSWER, kind="no_oracle"),
]
REPLIES = {
    "right": "Refunds are accepted within 30 days [2].",
    "wrong-block": "Passwords need 12 characters [3].",
    "extra-block": "Meals are paid up to 40 euros per day [2][3].",
    "refused": "The document does not contain the answer.",
    "declined": NO_ANSWER,
    "guessed": "Probably 10 days [1].",
    GENERAL[0].question: "The capital of France is Paris.",
    GENERAL[1].question: "Saturn.",
}


def test_metrics_count_citations_refusals_and_answers() -> None:
    report = evaluate_examples(CannedGenerator(REPLIES), EXAMPLES, general_questions=GENERAL)
    assert report["n_oracle"] == 4 and report["n_no_oracle"] == 2 and report["n_general"] == 2
    assert report["citation_accuracy"] == 0.25  # only "right": another block, or an extra one, is wrong
    assert report["oracle_refusal_rate"] == 0.25
    assert report["refusal_accuracy"] == 0.5
    assert report["exact_match"] == 0.5  # "right" and "wrong-block" match once their markers are gone
    extra_f1 = 2 * 7 / 9 / (7 / 9 + 1)  # 7 of the 9 predicted tokens make up the 7-token gold
    assert report["answer_f1"] == pytest.approx((1 + 1 + extra_f1 + 0) / 4)
    assert report["general_accuracy"] == 0.5
    assert report["general_f1"] == pytest.approx((2 * 1 / 5 * 1 / (1 / 5 + 1) + 0) / 2)


def test_general_metrics_only_come_with_general_questions() -> None:
    report = evaluate_examples(CannedGenerator(REPLIES), EXAMPLES[:1])
    assert "general_f1" not in report and report["n_no_oracle"] == 0 and report["refusal_accuracy"] == 0.0


def test_no_examples_give_zeros() -> None:
    report = evaluate_examples(CannedGenerator({}), [])
    assert all(report[name] == 0.0 for name in METRICS) and report["n_oracle"] == 0


@pytest.mark.parametrize(
    ("target", "gold"),
    [
        ("Refunds are accepted within 30 days [2].", "Refunds are accepted within 30 days."),
        ("Within 30 days [1][3].", "Within 30 days."),
        ("Within 30 days [1, 3]", "Within 30 days"),
        ("Within 30 days", "Within 30 days"),
    ],
)
def test_the_gold_answer_is_the_target_without_citations(target: str, gold: str) -> None:
    assert gold_answer(target) == gold


def test_cited_blocks_are_read_from_every_marker_form() -> None:
    assert cited_blocks("A [1] and B [2][4], C [3, 5].") == {1, 2, 3, 4, 5}
    assert cited_blocks("No citation, but 12 days.") == set()
    assert strip_citations("30 days [2].") == "30 days."
    assert cites_only("30 days [2].", [2, 4]) and not cites_only("30 days.", [2]) and not cites_only("[2][1]", [2])


@pytest.fixture(scope="module")
def generator() -> Iterator[TransformersGenerator]:
    # Shared cores: one thread avoids oversubscribing them (see test_probe.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TransformersGenerator(GeneratorSettings(max_new_tokens=48), ROOT / StorageSettings().model_cache_dir)
    torch.set_num_threads(threads)


def test_a_real_generator_gets_every_metric_in_range(generator: TransformersGenerator) -> None:
    template = load_template(ROOT / "configs" / "prompt.txt")
    refunds = Chunk(1, "doc", "refunds.md", 0, "Refund policy", "Refunds are accepted within 30 days of purchase.")
    laptops = Chunk(2, "doc", "it.md", 0, "Hardware", "Laptops are replaced every four years.")
    question = "How many days do customers have to request a refund?"
    distractor, oracle = RetrievedChunk(laptops, 0.5), RetrievedChunk(refunds, 0.9)
    examples = [
        Example("oracle", build_prompt(template, question, [distractor, oracle]), "30 days [2].", "oracle", [2]),
        Example("no-oracle", build_prompt(template, question, [distractor]), NO_ANSWER, "no_oracle"),
    ]
    report = evaluate_examples(generator, examples, general_questions=GENERAL[:1])
    assert set(report) == {*METRICS, "general_f1", "general_accuracy", "n_oracle", "n_no_oracle", "n_general"}
    assert all(0.0 <= report[name] <= 1.0 for name in [*METRICS, "general_f1", "general_accuracy"])
    assert (report["n_oracle"], report["n_no_oracle"], report["n_general"]) == (1, 1, 1)
