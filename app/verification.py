"""Checks a generated answer against the blocks it cites: exact facts must be there, and most of its words."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.lexical import content_terms
from app.prompt import NO_ANSWER

CITATION = re.compile(r"\[(\d{1,2})\]")
# Exact facts a reader can invent: each must occur in a cited block, character for character (case aside).
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:/-]\d+)*")
QUOTED = re.compile(r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”|`([^`\n]{1,80})`")
PATH = re.compile(r"(?<![\w.])(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)*")
# Code-like names: dotted or snake_case names, calls, and codes mixing letters with digits (LV-7, utf8).
IDENTIFIER = re.compile(
    r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|\b\w+\(\)|\b[A-Za-z]*_\w+\b|\b[A-Za-z]+-?\d+[A-Za-z\d]*\b"
)
WORD = re.compile(r"\w")
SPACES = re.compile(r"\s+")
SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\s*\n+\s*")
ABBREVIATIONS = frozenset({"e.g", "i.e", "a.m", "p.m", "etc"})
REFUSAL_TERMS = content_terms(NO_ANSWER)  # "The document [3].": a refusal the reader was kept from finishing


@dataclass(frozen=True)
class Verdict:
    supported: bool
    problems: list[str]  # why not, for the log: each unsupported fact, or the overlap that was too low
    cited_blocks: list[int]  # 1-based numbers of the blocks the answer was checked against


def cited_blocks(answer: str, block_count: int) -> list[int]:
    """The [n] the answer cites that exist; all blocks when it cites none (it was given all of them)."""
    cited = sorted({int(n) for n in CITATION.findall(answer) if 1 <= int(n) <= block_count})
    return cited or list(range(1, block_count + 1))


def exact_facts(answer: str) -> list[str]:
    """Numbers, dates, versions, paths, identifiers and quoted names in the answer (citations excluded); an
    answer of symbols alone ("','", ":=") is one fact."""
    text = CITATION.sub(" ", answer)
    quoted = [next(group for group in match.groups() if group) for match in QUOTED.finditer(text)]
    facts = [*quoted, *PATH.findall(text), *IDENTIFIER.findall(text), *NUMBER.findall(text)]
    literal = text.strip().removesuffix(".").strip()
    if not WORD.search(literal):
        facts.append(literal)
    cleaned = (fact.strip().rstrip(".,;:") for fact in facts)
    return list(dict.fromkeys(fact for fact in cleaned if fact and fact.lower() not in ABBREVIATIONS))


def _normalized(text: str) -> str:
    return SPACES.sub(" ", text.lower())


def _occurs(fact: str, text: str) -> bool:
    """`fact` in `text`, not as part of a longer number ("30" is not in "300" nor in "1.30")."""
    pattern = re.escape(_normalized(fact))
    if fact[:1].isdigit():
        pattern = rf"(?<![\d.,]){pattern}"
    if fact[-1:].isdigit():
        pattern = rf"{pattern}(?![\d]|[.,]\d)"
    return re.search(pattern, text) is not None


def verify(answer: str, question: str, blocks: Sequence[str], min_overlap: float) -> Verdict:
    """Whether the blocks the answer cites back it up.

    Every exact fact must occur in a cited block; at least `min_overlap` of the answer's content words
    must occur there too; and the answer must add something to the question (not merely restate it)."""
    cited = cited_blocks(answer, len(blocks))
    evidence = _normalized(" ".join(blocks[n - 1] for n in cited))
    facts = exact_facts(answer)
    problems = [f"{fact!r} is in no cited block" for fact in facts if not _occurs(fact, evidence)]
    words = content_terms(CITATION.sub(" ", answer))
    if words:
        overlap = len(words & content_terms(evidence)) / len(words)
        if overlap < min_overlap:
            problems.append(f"only {overlap:.0%} of its words are in the cited blocks")
        if words <= content_terms(question):
            problems.append("it only restates the question")
        if words <= REFUSAL_TERMS:
            problems.append("it is a refusal cut short")
    elif not facts:
        problems.append("it says nothing")
    return Verdict(not problems, problems, cited)


def recited(answer: str, question: str, blocks: Sequence[str], min_overlap: float) -> tuple[str, Verdict] | None:
    """For an answer its cited blocks do not back: the answer citing the one block that does, and its verdict
    (the reader copied "UTF-8" from block 1 and wrote [2]); None when no block alone does. Only an answer with
    exact facts is moved: they place it; common words are found in some block or other ("The non-empty sequence"
    re-cited was as wrong as before, measured on python_docs)."""
    first = CITATION.search(answer)
    if first is None or not exact_facts(answer):
        return None
    before, after = answer[: first.start()], CITATION.sub("", answer[first.end() :])  # one citation, where it was
    for number in range(1, len(blocks) + 1):
        candidate = f"{before}[{number}]{after}"
        if (verdict := verify(candidate, question, blocks, min_overlap)).supported:
            return candidate, verdict
    return None


def unsupported_numbers(answer: str, blocks: Sequence[str]) -> list[str]:
    """Numbers of the answer that occur in none of the blocks it cites (what `strict` must never return)."""
    evidence = _normalized(" ".join(blocks[n - 1] for n in cited_blocks(answer, len(blocks))))
    return [number for number in NUMBER.findall(CITATION.sub(" ", answer)) if not _occurs(number, evidence)]


def _sentence_key(sentence: str) -> str:
    return " ".join(CITATION.sub("", sentence).split()).lower().rstrip(" .!?")


def repeats_a_sentence(answer: str) -> bool:
    """Whether any sentence of the answer occurs twice (a decoding loop), ignoring case and citations."""
    keys = [_sentence_key(s) for s in SENTENCE_BREAK.split(answer)]
    keys = [key for key in keys if key]
    return len(keys) != len(set(keys))


def drop_repeated_sentences(answer: str) -> str:
    """The answer with each sentence kept once: a short loop ("You can't. You can't.") slips past n-gram blocking."""
    if not repeats_a_sentence(answer):
        return answer  # as generated, line breaks and all
    kept, seen = [], set()
    for sentence in SENTENCE_BREAK.split(answer.strip()):
        key = _sentence_key(sentence)
        if key not in seen or not key:
            kept.append(sentence)
        seen.add(key)
    return " ".join(kept)
