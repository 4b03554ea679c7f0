"""RAFT-style training data: each question with its oracle chunk(s) and distractors, in the /ask prompt."""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from app.generation import TextGenerator
from app.prompt import NO_ANSWER, PromptTemplate, build_prompt
from app.retrieval import RetrievedChunk, Retriever
from app.store import Chunk, Store
from finetune.records import Example, KnowledgeLabel, QAPair

log = logging.getLogger(__name__)


def load_pairs(path: Path, unanswerable: bool = False) -> list[QAPair]:
    """Question/answer pairs from JSONL: `question`, `answer` (or the first of `answers`), `source`, `id`.

    Lines marked `"answerable": false` (the eval set's format) are skipped, or with `unanswerable` kept
    with an empty answer: build_examples makes them refusals. A pair without an id gets `pair-<line>`,
    so the probe and the data step name it alike."""
    pairs = []
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if record.get("answerable") is False:
                if unanswerable and record.get("question"):
                    pairs.append(QAPair(record["question"], "", None, str(record.get("id") or f"pair-{line_number}")))
                continue
            answer = record.get("answer") or (record.get("answers") or [None])[0]
            if not record.get("question") or not answer:
                raise ValueError(f"{path}:{line_number}: a pair needs a question and an answer")
            pair_id = str(record.get("id") or f"pair-{line_number}")
            pairs.append(QAPair(record["question"], answer, record.get("source"), pair_id))
    return pairs


def indexed_chunks(store: Store) -> list[Chunk]:
    """Every chunk of an indexed document, in id order: the pool oracles and distractors come from."""
    chunks = store.searchable_chunks(sorted(store.chunk_ids()))
    return [chunks[chunk_id] for chunk_id in sorted(chunks)]


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def holds_answer(chunk: Chunk, answer: str) -> bool:
    """Whether the block shown for the chunk (heading and text) contains the answer, ignoring case."""
    return _normalized(answer) in _normalized(f"{chunk.section} {chunk.text}")


def _same_file(chunk: Chunk, source: str | None) -> bool:
    return source is not None and chunk.filename == Path(source).name


def find_oracles(
    pair: QAPair, chunks: list[Chunk], ranked: list[int], max_oracles: int = 2
) -> tuple[list[Chunk], bool]:
    """The chunk(s) a pair's answer comes from, best retrieval rank first, and whether they hold it literally.

    In order: chunks of the source document containing the answer; else the source chunk retrieval
    ranks best; else any chunk containing the answer. ([], False) when none of these exists."""
    rank = {chunk_id: position for position, chunk_id in enumerate(ranked)}
    by_rank = sorted(chunks, key=lambda c: rank.get(c.id, len(rank)))
    holding = [c for c in by_rank if holds_answer(c, pair.answer)]
    from_source = [c for c in holding if _same_file(c, pair.source)]
    if from_source:
        return from_source[:max_oracles], True
    source_ranked = [c for c in by_rank if _same_file(c, pair.source) and c.id in rank]
    if source_ranked:
        return source_ranked[:1], False
    return holding[:max_oracles], True


def pick_distractors(
    pair: QAPair, chunks: list[Chunk], ranked: list[int], excluded: set[int], count: int, rng: random.Random
) -> list[Chunk]:
    """Hard negatives first (retrieved for the question, but not holding its answer), then random chunks."""
    by_id = {c.id: c for c in chunks}
    usable = {c.id for c in chunks if c.id not in excluded and not (pair.answer and holds_answer(c, pair.answer))}
    hard = [chunk_id for chunk_id in ranked if chunk_id in usable][:count]
    rest = sorted(usable - set(hard))
    picked = hard + rng.sample(rest, min(count - len(hard), len(rest)))
    return [by_id[chunk_id] for chunk_id in picked]


def cite(answer: str, block: int) -> str:
    """The target reply: the answer as one sentence citing its block, e.g. "Within 30 days [2]."."""
    sentence = answer.strip().rstrip(".")
    return f"{sentence[:1].upper()}{sentence[1:]} [{block}]."


def build_examples(
    pairs: Sequence[QAPair],
    store: Store,
    retriever: Retriever | None,
    *,
    template: PromptTemplate,
    distractors: int = 3,
    no_oracle_share: float = 0.2,
    seed: int = 0,
    labels: dict[str, KnowledgeLabel] | None = None,
) -> list[Example]:
    """One example per pair: oracle(s) + distractors, shuffled; a `no_oracle_share` gets distractors only.

    With a retriever, oracles follow the retrieval ranking and distractors are hard negatives;
    without one, oracles are found by the answer text alone and distractors are random. A pair without
    an answer (an unanswerable question) gets what retrieval finds for it and the refusal as target.

    Knowledge labels (Gekhman et al. 2024) say which facts the base model does not know closed-book.
    Fine-tuning on such `Unknown` facts without their evidence teaches the model to make answers up.
    Here no example ever targets an answer without a block that holds it: an oracle example cites the
    oracle, a no-oracle example's target is the refusal (NO_ANSWER), and there are no closed-book
    (context-free) examples at all. So an Unknown fact appears only with its oracle chunk, or as a
    refusal; `build_examples` checks this for every example and copies the label onto it."""
    rng = random.Random(seed)
    chunks = indexed_chunks(store)
    if not chunks:
        raise ValueError(f"no indexed chunks in {store.location}: upload documents and let the worker index them first")
    order = list(range(len(pairs)))
    rng.shuffle(order)
    no_oracle = set(order[: round(no_oracle_share * len(pairs))])
    examples = []
    skipped = 0
    for position, pair in enumerate(pairs):
        ranked = _ranking(retriever, pair.question)
        if not pair.answer:  # a question the documents do not answer: refuse over what retrieval finds for it
            blocks = pick_distractors(pair, chunks, ranked, set(), distractors + 1, rng)
            examples.append(_example(pair, blocks, [], template, labels))
            continue
        oracles, literal = find_oracles(pair, chunks, ranked)
        if not oracles:
            skipped += 1
            log.warning("pair %s skipped: no chunk of %s holds %r", pair.id, pair.source or "any document", pair.answer)
            continue
        excluded = {c.id for c in oracles}
        if not literal:  # the answer is paraphrased: another chunk of its source may hold it too
            excluded |= {c.id for c in chunks if _same_file(c, pair.source)}
        with_oracle = position not in no_oracle
        count = distractors if with_oracle else distractors + len(oracles)  # as many blocks either way
        others = pick_distractors(pair, chunks, ranked, excluded, count, rng)
        with_oracle = with_oracle or not others  # a refusal needs blocks to refuse over: never empty context
        blocks = (oracles if with_oracle else []) + others
        rng.shuffle(blocks)
        example = _example(pair, blocks, oracles if with_oracle else [], template, labels)
        _check_grounded(example, blocks, pair.answer if literal else None)
        examples.append(example)
    if skipped:
        log.warning("%d of %d pairs had no chunk to cite and were skipped", skipped, len(pairs))
    return examples


def _ranking(retriever: Retriever | None, question: str) -> list[int]:
    if retriever is None:
        return []
    return [found.chunk.id for found in retriever.search(question, retriever.settings.candidates).chunks]


def _example(
    pair: QAPair,
    blocks: list[Chunk],
    oracles: list[Chunk],
    template: PromptTemplate,
    labels: dict[str, KnowledgeLabel] | None,
) -> Example:
    oracle_ids = {c.id for c in oracles}
    oracle_blocks = [number for number, c in enumerate(blocks, start=1) if c.id in oracle_ids]
    # The score is the retrieval similarity; the prompt never shows it.
    messages = build_prompt(template, pair.question, [RetrievedChunk(c, 0.0) for c in blocks])
    return Example(
        id=pair.id,
        messages=messages,
        target=cite(pair.answer, oracle_blocks[0]) if oracle_blocks else NO_ANSWER,
        kind="oracle" if oracle_blocks else "no_oracle",
        oracle_blocks=oracle_blocks,
        label=(labels or {}).get(pair.id),
    )


def _check_grounded(example: Example, blocks: list[Chunk], answer: str | None) -> None:
    """No closed-book targets: every example has context, and an answer target cites a block holding it."""
    if not blocks:
        raise AssertionError(f"example {example.id} has no context blocks")
    if (example.target == NO_ANSWER) == bool(example.oracle_blocks):
        raise AssertionError(f"example {example.id}: an answer needs its oracle, a refusal must have none")
    if answer is not None and not all(holds_answer(blocks[n - 1], answer) for n in example.oracle_blocks):
        raise AssertionError(f"example {example.id}: a cited block does not hold the answer")


def label_mix(examples: Sequence[Example]) -> dict[str, dict[str, int]]:
    """How many examples of each kind carry each knowledge label ("unlabelled" without a probe)."""
    mix: dict[str, Counter[str]] = {}
    for example in examples:
        mix.setdefault(example.label or "unlabelled", Counter())[example.kind] += 1
    return {label: dict(counts) for label, counts in sorted(mix.items())}


def split(examples: Sequence[Example], held_out: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded train / held-out split that keeps the share of no-oracle examples in both parts."""
    rng = random.Random(seed)
    train, kept = [], []
    for kind in ("oracle", "no_oracle"):
        group = [e for e in examples if e.kind == kind]
        rng.shuffle(group)
        cut = round(held_out * len(group))
        kept += group[:cut]
        train += group[cut:]
    return train, kept


TEACHER_PROMPT = (
    "Read the text and write {count} questions that it answers, each with its short answer copied from the text.\n"
    "Use exactly this format, one pair per line:\nQ: <question> A: <answer>\n\nText:\n{text}"
)
PAIR_LINE = re.compile(r"Q:\s*(?P<question>.+?\?)\s*A:\s*(?P<answer>.+)")


def generate_pairs(generator: TextGenerator, chunks: Sequence[Chunk], per_chunk: int = 2) -> list[QAPair]:
    """Questions a teacher model writes about each chunk (distillation into the small model).

    Only pairs whose answer the chunk really contains are kept: build_examples needs to find it."""
    pairs: list[QAPair] = []
    for chunk in chunks:
        prompt = TEACHER_PROMPT.format(count=per_chunk, text=f"{chunk.section}\n{chunk.text}".strip())
        reply = generator.generate([{"role": "user", "content": prompt}])
        for match in list(PAIR_LINE.finditer(reply))[:per_chunk]:
            answer = match["answer"].strip().strip('"').rstrip(".").strip()
            if answer and holds_answer(chunk, answer):
                pairs.append(QAPair(match["question"].strip(), answer, chunk.filename, f"gen-{chunk.id}-{len(pairs)}"))
    return pairs
