from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluation.datasets import EvalDocument, EvalQuestion, load_eval_set


def qa(qid: str, question: str, *answers: str, impossible: bool | None = None) -> dict[str, object]:
    spans = [{"text": answer, "answer_start": 0} for answer in answers]
    item: dict[str, object] = {"id": qid, "question": question, "answers": spans}
    if impossible is not None:
        item["is_impossible"] = impossible
    return item


def write_squad(path: Path, articles: list[dict[str, object]], version: str = "1.1") -> Path:
    path.write_text(json.dumps({"version": version, "data": articles}), encoding="utf-8")
    return path


NORMANS = {
    "title": "Normans",
    "paragraphs": [
        {
            "context": "The Normans were the people who gave their name to Normandy.",
            "qas": [qa("n1", "Who gave their name to Normandy?", "The Normans", "Normans", "The Normans")],
        },
        {"context": "Rollo was their first ruler.", "qas": [qa("n2", "Who was the first ruler?", "Rollo")]},
    ],
}
SUPER_BOWL = {
    "title": "Super_Bowl_50",
    "paragraphs": [{"context": "Denver won Super Bowl 50.", "qas": [qa("s1", "Who won Super Bowl 50?", "Denver")]}],
}


def test_a_squad_article_becomes_one_markdown_document(tmp_path: Path) -> None:
    eval_set = load_eval_set(write_squad(tmp_path / "dev-v1.1.json", [NORMANS, SUPER_BOWL]))
    assert eval_set.name == "dev-v1.1"
    assert [d.filename for d in eval_set.documents] == ["Normans.md", "Super_Bowl_50.md"]
    assert eval_set.documents[0].content.decode() == (
        "# Normans\n\n"
        "## Paragraph 1\n\nThe Normans were the people who gave their name to Normandy.\n\n"
        "## Paragraph 2\n\nRollo was their first ruler.\n"
    )
    assert eval_set.documents[1].content.decode().startswith("# Super Bowl 50\n\n## Paragraph 1\n\nDenver won")


def test_squad_answers_are_deduplicated_in_order(tmp_path: Path) -> None:
    questions = load_eval_set(write_squad(tmp_path / "dev.json", [NORMANS])).questions
    assert questions == [
        EvalQuestion("n1", "Who gave their name to Normandy?", ("The Normans", "Normans"), True, None),
        EvalQuestion("n2", "Who was the first ruler?", ("Rollo",), True, None),
    ]


def test_squad_v2_impossible_questions_are_unanswerable(tmp_path: Path) -> None:
    impossible = qa("x1", "Who ruled Normandy in 2020?", impossible=True)
    impossible["plausible_answers"] = [{"text": "Rollo", "answer_start": 0}]
    possible = qa("a1", "Who ruled?", "Rollo", impossible=False)
    # is_impossible wins even where a converted set left an answer in place.
    flagged = qa("x2", "Who ruled Mars?", "Rollo", impossible=True)
    article = {"title": "Normans", "paragraphs": [{"context": "Rollo ruled.", "qas": [possible, impossible, flagged]}]}
    questions = load_eval_set(write_squad(tmp_path / "dev-v2.0.json", [article], "v2.0")).questions
    assert [(q.id, q.answers, q.answerable) for q in questions] == [
        ("a1", ("Rollo",), True),
        ("x1", (), False),
        ("x2", (), False),
    ]


def test_limit_keeps_the_first_articles(tmp_path: Path) -> None:
    eval_set = load_eval_set(write_squad(tmp_path / "dev.json", [NORMANS, SUPER_BOWL]), limit=1)
    assert [d.filename for d in eval_set.documents] == ["Normans.md"]
    assert [q.id for q in eval_set.questions] == ["n1", "n2"]


def test_titles_become_safe_distinct_file_names(tmp_path: Path) -> None:
    titles = ["AC/DC", "AC_DC", "Beyoncé", "../../etc/passwd", "???"]
    articles = [{"title": t, "paragraphs": [{"context": "Text.", "qas": []}]} for t in titles]
    eval_set = load_eval_set(write_squad(tmp_path / "dev.json", articles))
    names = [d.filename for d in eval_set.documents]
    assert names == ["AC_DC.md", "AC_DC_2.md", "Beyoncé.md", "etc_passwd.md", "article_5.md"]
    assert eval_set.documents[0].content.startswith(b"# AC/DC\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a valid JSON"),
        ('{"version": "1.1"}', "not SQuAD-shaped"),
        ('{"data": [{"title": "T"}]}', "article 1 is not SQuAD-shaped: it lacks 'paragraphs'"),
        ('{"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "q"}]}]}]}', "lacks 'answers'"),
    ],
)
def test_a_json_that_is_not_squad_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_eval_set(path)


def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nowhere.json does not exist"):
        load_eval_set(tmp_path / "nowhere.json")


def write_jsonl_set(root: Path, lines: list[str], files: dict[str, bytes] | None = None) -> Path:
    documents = root / "documents"
    documents.mkdir(parents=True)
    for name, content in (files or {"refund.md": b"# Refunds\n30 days.", "travel.pdf": b"%PDF-1.4"}).items():
        (documents / name).write_bytes(content)
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


REFUND = json.dumps({"id": "r", "question": "How long for refunds?", "answers": ["30 days"], "source": "refund.md"})
PETS = json.dumps({"question": "May I bring my cat?", "answerable": False})


def test_a_jsonl_folder_loads_questions_and_every_document(tmp_path: Path) -> None:
    root = write_jsonl_set(tmp_path / "policies", [REFUND, "", PETS])
    (root / "documents" / ".DS_Store").write_bytes(b"junk")
    eval_set = load_eval_set(root)
    assert eval_set.name == "policies"
    assert eval_set.documents == [
        EvalDocument("refund.md", b"# Refunds\n30 days."),
        EvalDocument("travel.pdf", b"%PDF-1.4"),
    ]
    assert eval_set.questions == [
        EvalQuestion("r", "How long for refunds?", ("30 days",), True, "refund.md"),
        EvalQuestion("line-3", "May I bring my cat?", (), False, None),
    ]


def test_a_jsonl_file_finds_its_sibling_documents_and_limit_keeps_all_documents(tmp_path: Path) -> None:
    root = write_jsonl_set(tmp_path / "policies", [REFUND, PETS])
    eval_set = load_eval_set(root / "questions.jsonl", limit=1)
    assert [q.id for q in eval_set.questions] == ["r"]
    assert len(eval_set.documents) == 2


def test_answerable_defaults_to_having_answers(tmp_path: Path) -> None:
    lines = [json.dumps({"question": "Q1?", "answers": ["a"]}), json.dumps({"question": "Q2?", "answers": []})]
    questions = load_eval_set(write_jsonl_set(tmp_path / "set", lines)).questions
    assert [q.answerable for q in questions] == [True, False]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{broken", r"questions.jsonl, line 2 is not valid JSON"),
        ('{"answers": ["x"]}', r"questions.jsonl, line 2 lacks \"question\""),
        ('{"question": "Q?", "source": "missing.docx"}', r"line 2: \"source\" names 'missing.docx'"),
        ('{"question": "Q?", "answers": "30 days"}', r"line 2: \"answers\" must be a list"),
        ('{"question": "Q?", "answers": ["x"], "answerable": false}', r"line 2: \"answerable\" is false"),
        ('{"id": "r", "question": "Q?"}', r"the id 'r' is used by more than one question"),
    ],
)
def test_a_bad_jsonl_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    root = write_jsonl_set(tmp_path / "set", [REFUND, line])
    with pytest.raises(ValueError, match=message):
        load_eval_set(root)


def test_a_jsonl_set_needs_its_questions_and_documents(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="questions.jsonl does not exist"):
        load_eval_set(tmp_path / "empty")
    (tmp_path / "alone.jsonl").write_text(PETS)
    with pytest.raises(ValueError, match="documents does not exist"):
        load_eval_set(tmp_path / "alone.jsonl")


def test_limit_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        load_eval_set(write_squad(tmp_path / "dev.json", [NORMANS]), limit=0)
