"""Eval datasets: SQuAD v1.1/v2.0 JSON, or JSONL questions with a folder of documents."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUESTIONS_FILE = "questions.jsonl"
DOCUMENTS_DIR = "documents"
# Well under the usual 255-byte limit on a file name, leaving room for a suffix and ".md".
MAX_NAME_BYTES = 200
UNSAFE_NAME_CHARS = re.compile(r"[^\w\-.()]+")


@dataclass(frozen=True)
class EvalDocument:
    filename: str  # e.g. "Normans.md" for a SQuAD article, or the file's own name
    content: bytes  # the bytes to upload/ingest


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # gold answer strings (empty for unanswerable)
    answerable: bool
    source: str | None  # filename of the document that holds the answer (JSONL), None for SQuAD


@dataclass(frozen=True)
class EvalSet:
    name: str
    documents: list[EvalDocument]
    questions: list[EvalQuestion]


def load_eval_set(path: Path, limit: int | None = None) -> EvalSet:
    """Load a SQuAD JSON file, a questions.jsonl file, or a folder holding questions.jsonl and documents/.

    `limit` keeps the first `limit` articles of a SQuAD file, or the first `limit` questions of a JSONL set.
    """
    path = Path(path)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if not path.exists():
        raise ValueError(
            f"{path} does not exist: pass a SQuAD JSON file, a {QUESTIONS_FILE} file, "
            f"or a folder holding {QUESTIONS_FILE} and {DOCUMENTS_DIR}/"
        )
    if path.is_dir():
        return _load_jsonl_set(path / QUESTIONS_FILE, path / DOCUMENTS_DIR, path.name, limit)
    if path.suffix == ".jsonl":
        return _load_jsonl_set(path, path.parent / DOCUMENTS_DIR, path.stem, limit)
    return _load_squad(path, limit)


# SQuAD


def _load_squad(path: Path, limit: int | None) -> EvalSet:
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a valid JSON file: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise ValueError(f'{path} is not SQuAD-shaped: expected {{"data": [{{"title", "paragraphs": [...]}}]}}')
    documents: list[EvalDocument] = []
    questions: list[EvalQuestion] = []
    taken: set[str] = set()
    for number, article in enumerate(raw["data"][:limit], start=1):
        where = f"{path}, article {number}"
        title = _field(article, "title", str, where)
        contexts = []
        for i, paragraph in enumerate(_field(article, "paragraphs", list, where), start=1):
            contexts.append(_field(paragraph, "context", str, f"{where}, paragraph {i}"))
            qas = _field(paragraph, "qas", list, f"{where}, paragraph {i}")
            questions.extend(_squad_question(qa, f"{where}, paragraph {i}") for qa in qas)
        filename = _unique(_safe_filename(title, number), taken)
        documents.append(EvalDocument(filename, _article_markdown(title, contexts).encode("utf-8")))
    return EvalSet(path.stem, documents, questions)


def _squad_question(qa: Any, where: str) -> EvalQuestion:
    qid = str(_field(qa, "id", (str, int), where))
    where = f"{where}, question {qid!r}"
    texts = [_field(answer, "text", str, where) for answer in _field(qa, "answers", list, where)]
    answers = () if qa.get("is_impossible", False) else _dedupe(texts)
    return EvalQuestion(qid, _field(qa, "question", str, where).strip(), answers, bool(answers), None)


def _article_markdown(title: str, contexts: list[str]) -> str:
    sections = [f"## Paragraph {i}\n\n{context.strip()}" for i, context in enumerate(contexts, start=1)]
    return "\n\n".join([f"# {title.replace('_', ' ').strip()}", *sections]) + "\n"


def _safe_filename(title: str, number: int) -> str:
    """The title as a file name: path separators and other unsafe characters become "_"; unicode letters stay."""
    stem = UNSAFE_NAME_CHARS.sub("_", title).strip("._")
    stem = stem.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", errors="ignore")
    return f"{stem or f'article_{number}'}.md"


def _unique(filename: str, taken: set[str]) -> str:
    """`filename`, or `name_2.md`, `name_3.md`... when two titles sanitize alike."""
    stem, suffix = filename.rsplit(".", 1)
    candidate, n = filename, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}_{n}.{suffix}"
    taken.add(candidate)
    return candidate


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where} is not SQuAD-shaped: it lacks {key!r}")
    if not isinstance(obj[key], kind):
        raise ValueError(f"{where} is not SQuAD-shaped: {key!r} has the wrong type ({type(obj[key]).__name__})")
    return obj[key]


def _dedupe(texts: list[str]) -> tuple[str, ...]:
    """Stripped, non-empty, each once, in their first order."""
    return tuple(dict.fromkeys(text.strip() for text in texts if text.strip()))


# JSONL


def _load_jsonl_set(questions_path: Path, documents_dir: Path, name: str, limit: int | None) -> EvalSet:
    if not questions_path.is_file():
        raise ValueError(f"{questions_path} does not exist: a JSONL eval set needs one question object per line")
    documents = _read_documents(documents_dir)
    filenames = {document.filename for document in documents}
    questions: list[EvalQuestion] = []
    for number, line in enumerate(questions_path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if limit is not None and len(questions) >= limit:
            break
        if line.strip():
            questions.append(_jsonl_question(line, f"{questions_path}, line {number}", number, filenames))
    _check_unique_ids(questions, questions_path)
    return EvalSet(name, documents, questions)


def _read_documents(documents_dir: Path) -> list[EvalDocument]:
    if not documents_dir.is_dir():
        raise ValueError(f"{documents_dir} does not exist: put the documents the questions are about there")
    files = sorted(p for p in documents_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{documents_dir} holds no documents")
    return [EvalDocument(p.name, p.read_bytes()) for p in files]


def _jsonl_question(line: str, where: str, number: int, filenames: set[str]) -> EvalQuestion:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc.msg}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("question"), str) or not obj["question"].strip():
        raise ValueError(f'{where} lacks "question": each line must be an object with a non-empty "question" string')
    answers = obj.get("answers", [])
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError(f'{where}: "answers" must be a list of strings')
    answers = _dedupe(answers)
    answerable = obj.get("answerable", bool(answers))
    if not isinstance(answerable, bool):
        raise ValueError(f'{where}: "answerable" must be true or false')
    if not answerable and answers:
        raise ValueError(f'{where}: "answerable" is false but "answers" are given; drop one of them')
    source = obj.get("source")
    if source is not None and source not in filenames:
        raise ValueError(f'{where}: "source" names {source!r}, which is not a file in {DOCUMENTS_DIR}/')
    return EvalQuestion(str(obj.get("id", f"line-{number}")), obj["question"].strip(), answers, answerable, source)


def _check_unique_ids(questions: list[EvalQuestion], path: Path) -> None:
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise ValueError(f"{path}: the id {question.id!r} is used by more than one question")
        seen.add(question.id)
