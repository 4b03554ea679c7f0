"""The reader adapter's training corpora: well-formed, answers found in their documents, and never the
evaluation corpus the adapter is judged on (evaluation/data/python_docs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evaluation.datasets import load_eval_set

REPO = Path(__file__).resolve().parents[3]
READER = REPO / "finetune" / "data" / "reader"
CORPORA = sorted(path for path in READER.iterdir() if (path / "questions.jsonl").is_file())
HELD_OUT = REPO / "evaluation" / "data" / "python_docs"
TAGS = re.compile(r"<[^>]+>")


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_there_are_five_corpora_with_1000_answerable_pairs_and_refusals() -> None:
    assert {path.name for path in CORPORA} == {"policies", "sqlite", "postgresql", "nodejs", "valgrind"}
    sets = [load_eval_set(path) for path in CORPORA]
    assert sum(q.answerable for s in sets for q in s.questions) >= 1000
    assert all(sum(not q.answerable for q in s.questions) >= 0.15 * len(s.questions) for s in sets)


@pytest.mark.parametrize("corpus", CORPORA, ids=lambda path: path.name)
def test_every_first_answer_is_in_its_source_document(corpus: Path) -> None:
    eval_set = load_eval_set(corpus)
    texts = {doc.filename: " ".join(TAGS.sub(" ", doc.content.decode()).lower().split()) for doc in eval_set.documents}
    missing = [
        q.id
        for q in eval_set.questions
        if q.answerable and " ".join(q.answers[0].lower().split()) not in texts[q.source].replace("&amp;", "&")
    ]
    assert len(missing) <= 0.02 * len(eval_set.questions), missing  # HTML entities aside, all are there


def test_the_evaluation_corpus_is_in_no_training_corpus() -> None:
    held_out = load_eval_set(HELD_OUT)
    held_out_files = {doc.filename for doc in held_out.documents}
    held_out_questions = [words(q.question) for q in held_out.questions]
    for corpus in CORPORA:
        training = load_eval_set(corpus)
        assert not held_out_files & {doc.filename for doc in training.documents}
        for question in training.questions:
            mine = words(question.question)
            overlap = max(len(mine & other) / len(mine | other) for other in held_out_questions)
            assert overlap < 0.8, question.question


def test_the_shipped_adapter_was_trained_on_these_corpora_only() -> None:
    examples = (REPO / "adapters" / "reader" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    held_out_files = {path.name for path in (HELD_OUT / "documents").iterdir()}
    for line in examples:
        prompt = json.loads(line)["messages"][-1]["content"]
        assert not any(f"({name})" in prompt for name in held_out_files)  # blocks are headed "section (file)"
