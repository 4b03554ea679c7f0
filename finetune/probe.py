"""What the base model already knows closed-book: the knowledge labels of Gekhman et al. (2024).

"Does Fine-Tuning LLMs on New Knowledge Encourage Hallucinations?" sorts each question/answer pair by
how often the model answers it correctly without documents, given a few-shot prompt:

- HighlyKnown: the greedy answer is correct under every few-shot prompt;
- MaybeKnown: the greedy answer is correct under some of the prompts, not all;
- WeaklyKnown: the greedy answer is never correct, but some sampled answer is;
- Unknown: no greedy or sampled answer is correct.

An answer is correct (`is_correct`) when, after SQuAD normalization, it contains the gold answer as
whole words, or its token F1 with the gold answer is at least 0.5 (for gold answers that are
sentences, which a model paraphrases).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from typing import cast

import torch

from app.generation.transformers_backend import CausalLM, decoding_config, pad_token_id
from app.prompt import Message
from evaluation.metrics import f1_score, normalize_answer
from finetune.records import KnowledgeLabel, ProbeResult, QAPair

log = logging.getLogger(__name__)

LABELS: tuple[KnowledgeLabel, ...] = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
# Short answers only: the few-shot exemplars show the format, and the system line keeps the chat model from
# wrapping its answer in a paragraph.
SYSTEM = "Answer the question with a short phrase only."
MAX_NEW_TOKENS = 24
# Pairs answered in one batch: their greedy prompts together, then their samples together.
BATCH_PAIRS = 8
MIN_F1 = 0.5
WORD = re.compile(r"\w+")
# Words that say nothing about a question's topic, left out when ranking exemplars by word overlap.
STOPWORDS = frozenset(
    WORD.findall(
        "what which who whom whose when where why how is are was were do does did of in on at to for by with from "
        "and or it its this that these those be been can could would should will i you he she we they",
    )
)
PUNCTUATION_RUN = re.compile(r"[^\w\s]+")


def probe_pairs(
    base: CausalLM,
    pairs: list[QAPair],
    *,
    shots: int = 4,
    samples: int = 8,
    temperature: float = 0.7,
    seed: int = 0,
    greedy_prompts: int = 2,
) -> list[ProbeResult]:
    """Label each pair by the base model's closed-book answers; one result per pair, in order.

    `base` is the model itself, not a served generator: sampling needs `num_return_sequences`. Each pair is answered
    greedily under `greedy_prompts` few-shot prompts, each made of `shots` other pairs of `pairs`
    (the most similar questions first, then the next most similar), and `samples` times at
    `temperature` under the first prompt. `greedy_correct` is True when any greedy answer was correct.
    """
    if greedy_prompts < 1:
        raise ValueError(f"greedy_prompts must be at least 1, got {greedy_prompts}")
    torch.manual_seed(seed)
    words = [_topic_words(pair.question) for pair in pairs]
    results = []
    for first in range(0, len(pairs), BATCH_PAIRS):
        indices = range(first, min(first + BATCH_PAIRS, len(pairs)))
        prompts = [_prompts(index, pairs, words, shots, greedy_prompts) for index in indices]
        greedy = _generate(base, [prompt for own in prompts for prompt in own], 1, None)
        sampled = _generate(base, [own[0] for own in prompts], samples, temperature) if samples > 0 else []
        for position, index in enumerate(indices):
            own_greedy = [answers[0] for answers in greedy[position * greedy_prompts : (position + 1) * greedy_prompts]]
            own_sampled = sampled[position] if sampled else []
            results.append(_result(index, pairs[index], own_greedy, own_sampled))
        log.info("probed %d of %d pairs", len(results), len(pairs))
    log.info("knowledge labels: %s", label_counts(results))
    return results


def knowledge_label(greedy_hits: list[bool], sampled_hits: list[bool]) -> KnowledgeLabel:
    """Gekhman et al.'s category from which greedy answers (one per few-shot prompt) and samples were correct."""
    if greedy_hits and all(greedy_hits):
        return "HighlyKnown"
    if any(greedy_hits):
        return "MaybeKnown"
    if any(sampled_hits):
        return "WeaklyKnown"
    return "Unknown"


def label_counts(results: list[ProbeResult]) -> dict[str, int]:
    """How many results carry each label; every label is present, in order from best to least known."""
    counts = Counter(result.label for result in results)
    return {label: counts[label] for label in LABELS}


def is_correct(answer: str, gold: str) -> bool:
    """The answer contains the gold answer as whole words after SQuAD normalization, or has token F1 >= 0.5."""
    target = normalize_answer(gold)
    if not target:
        return False
    # SQuAD drops punctuation without a space ("Austen's" -> "austens"): also try it with a space instead.
    spaced = normalize_answer(PUNCTUATION_RUN.sub(" ", answer))
    contains = any(f" {target} " in f" {text} " for text in (normalize_answer(answer), spaced))
    return contains or f1_score(answer, [gold]) >= MIN_F1


def _result(index: int, pair: QAPair, greedy: list[str], sampled: list[str]) -> ProbeResult:
    greedy_hits = [is_correct(answer, pair.answer) for answer in greedy]
    sampled_hits = [is_correct(answer, pair.answer) for answer in sampled]
    label = knowledge_label(greedy_hits, sampled_hits)
    log.debug("probe %s %r: greedy %r sampled %r -> %s", pair.id, pair.question, greedy, sampled, label)
    return ProbeResult(
        id=pair.id or str(index),
        question=pair.question,
        answer=pair.answer,
        label=label,
        greedy_correct=any(greedy_hits),
        sampled_correct=sum(sampled_hits) / len(sampled_hits) if sampled_hits else 0.0,
    )


def _prompts(index: int, pairs: list[QAPair], words: list[set[str]], shots: int, count: int) -> list[list[Message]]:
    """The pair's `count` few-shot prompts, each with its own exemplar set."""
    ranked = _ranked_exemplars(index, pairs, words)
    return [_few_shot_messages(pairs[index].question, _exemplar_set(ranked, shots, number)) for number in range(count)]


def _topic_words(question: str) -> set[str]:
    return {word for word in WORD.findall(normalize_answer(question)) if word not in STOPWORDS}


def _ranked_exemplars(index: int, pairs: list[QAPair], words: list[set[str]]) -> list[QAPair]:
    """The other pairs, most similar question first (Jaccard overlap of topic words); ties keep file order."""

    def overlap(other: int) -> float:
        union = words[index] | words[other]
        return len(words[index] & words[other]) / len(union) if union else 0.0

    others = [other for other in range(len(pairs)) if other != index]
    return [pairs[other] for other in sorted(others, key=overlap, reverse=True)]


def _exemplar_set(ranked: list[QAPair], shots: int, number: int) -> list[QAPair]:
    """The `number`-th exemplar set: the next `shots` most similar pairs, or, when too few pairs remain
    for a fresh set, the same pairs rotated so that the prompt still differs."""
    count = min(shots, len(ranked))
    if count == 0:
        return []
    start = number * count if (number + 1) * count <= len(ranked) else number % len(ranked)
    # Most similar exemplar last, nearest the question.
    return [ranked[(start + offset) % len(ranked)] for offset in reversed(range(count))]


def _few_shot_messages(question: str, exemplars: list[QAPair]) -> list[Message]:
    messages: list[Message] = [{"role": "system", "content": SYSTEM}]
    for exemplar in exemplars:
        messages.append({"role": "user", "content": exemplar.question})
        messages.append({"role": "assistant", "content": exemplar.answer})
    messages.append({"role": "user", "content": question})
    return messages


def _generate(base: CausalLM, prompts: list[list[Message]], count: int, temperature: float | None) -> list[list[str]]:
    """`count` answers to each prompt, in one batch: greedy when `temperature` is None, else sampled.

    Only the first line of each answer is kept: a model that goes on after its answer starts a new line."""
    # Plain temperature sampling, as in the paper: no top-p or top-k truncation.
    config = decoding_config(base.model, temperature or 0.0, top_p=1.0, top_k=0)
    config.max_new_tokens = MAX_NEW_TOKENS
    config.num_return_sequences = count
    config.pad_token_id = pad_token_id(base.tokenizer)
    inputs = _left_padded(base, prompts, config.pad_token_id)
    with torch.inference_mode():
        output = base.model.generate(**inputs, generation_config=config)
    texts = base.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    answers = [(text.strip().splitlines() or [""])[0].strip() for text in texts]
    return [answers[start : start + count] for start in range(0, len(answers), count)]


def _left_padded(base: CausalLM, prompts: list[list[Message]], pad_id: int) -> dict[str, torch.Tensor]:
    """The prompts' chat-template tokens, padded on the left so that every answer starts at the same column.

    Padded by hand: the packaged tokenizer has no pad token of its own."""
    template = base.tokenizer.apply_chat_template
    ids = [cast(list[int], template(prompt, add_generation_prompt=True)) for prompt in prompts]
    width = max(len(row) for row in ids)
    input_ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in ids])
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])
    device = base.model.device
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
