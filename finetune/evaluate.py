"""Scores a generator (the base model, or with an adapter) on held-out examples in the /ask prompt format."""

from __future__ import annotations

import logging
import re

from app.generation import TextGenerator
from app.prompt import is_refusal
from evaluation.metrics import exact_match, f1_score, mean
from finetune.probe import is_correct
from finetune.records import Example, QAPair

log = logging.getLogger(__name__)

# "[2]", "[1][3]" or "[1, 3]", with the space before it.
CITATION = re.compile(r"\s*\[\s*\d+(?:\s*,\s*\d+)*\s*\]")
NUMBER = re.compile(r"\d+")


def evaluate_examples(
    generator: TextGenerator, examples: list[Example], *, general_questions: list[QAPair] | None = None
) -> dict[str, float]:
    """Answer each example once (the generator's own decoding settings) and score the replies.

    On oracle examples: `answer_f1` and `exact_match` of the reply against `gold_answer(target)`, both
    without citation markers; `citation_accuracy`, the share whose reply cites only oracle blocks (at
    least one); `oracle_refusal_rate`, the share refused although the answer was there. On no-oracle
    examples: `refusal_accuracy`, the share refused. With `general_questions`: `general_f1` and
    `general_accuracy` (the probe's `is_correct`) of closed-book answers, to show what an adapter
    forgets. A metric over no items is 0.0; the `n_*` counts say how many items each is over.
    """
    oracle = [(example, _reply(generator, example)) for example in examples if example.kind == "oracle"]
    no_oracle = [_reply(generator, example) for example in examples if example.kind == "no_oracle"]
    f1s, matches, cited, refused = [], [], [], []
    for example, reply in oracle:
        gold = gold_answer(example.target)
        f1s.append(f1_score(strip_citations(reply), [gold]))
        matches.append(exact_match(strip_citations(reply), [gold]))
        cited.append(cites_only(reply, example.oracle_blocks))
        refused.append(is_refusal(reply))
    report = {
        "answer_f1": mean(f1s),
        "exact_match": mean(matches),
        "citation_accuracy": mean(cited),
        "oracle_refusal_rate": mean(refused),
        "refusal_accuracy": mean([is_refusal(reply) for reply in no_oracle]),
        "n_oracle": len(oracle),
        "n_no_oracle": len(no_oracle),
    }
    if general_questions is not None:
        report.update(general_report(generator, general_questions))
    log.info("evaluated %d examples: %s", len(examples), report)
    return report


def general_report(generator: TextGenerator, questions: list[QAPair]) -> dict[str, float]:
    """Closed-book answers to general questions: a plain user message, no documents, no system prompt."""
    answers = [generator.generate([{"role": "user", "content": pair.question}]) for pair in questions]
    f1s, correct = [], []
    for pair, answer in zip(questions, answers, strict=True):
        log.debug("general %r -> %r (gold %r)", pair.question, answer, pair.answer)
        f1s.append(f1_score(answer, [pair.answer]))
        correct.append(is_correct(answer, pair.answer))
    return {"general_f1": mean(f1s), "general_accuracy": mean(correct), "n_general": len(questions)}


def gold_answer(target: str) -> str:
    """The answer in a target reply without its citation markers: "Within 30 days [2]." -> "Within 30 days."."""
    return strip_citations(target).strip()


def strip_citations(text: str) -> str:
    return CITATION.sub("", text)


def cited_blocks(reply: str) -> set[int]:
    """The block numbers a reply cites, from markers like [2], [1][3] or [1, 3]."""
    return {int(number) for marker in CITATION.findall(reply) for number in NUMBER.findall(marker)}


def cites_only(reply: str, oracle_blocks: list[int]) -> bool:
    """The reply cites at least one block, and every block it cites holds the answer."""
    cited = cited_blocks(reply)
    return bool(cited) and cited <= set(oracle_blocks)


def _reply(generator: TextGenerator, example: Example) -> str:
    reply = generator.generate(example.messages)
    log.debug("example %s (%s): %r (target %r)", example.id, example.kind, reply, example.target)
    return reply
