"""Answers checked against the blocks they cite: invented facts and restated questions are caught."""

from __future__ import annotations

import pytest

from app.verification import (
    cited_blocks,
    drop_repeated_sentences,
    exact_facts,
    recited,
    repeats_a_sentence,
    unsupported_numbers,
    verify,
)

BLOCKS = [
    "Expense claims must be filed within 30 days of the purchase, using form EXP-4.",
    "Python 3.11 added tomllib; call json.dumps() with indent=4 for pretty output. Logs go to /var/log/app.",
]


def test_exact_facts_are_numbers_versions_identifiers_paths_and_quoted_names() -> None:
    facts = exact_facts('Use form EXP-4 within 30 days, version 3.3.3, json.dumps() in /var/log/app, "Helix" [2].')
    assert {"EXP-4", "30", "3.3.3", "json.dumps()", "/var/log/app", "Helix"} <= set(facts)
    assert "2" not in facts  # the citation is not a fact


@pytest.mark.parametrize(
    "answer",
    [
        "Within 30 days [1].",
        "Use form EXP-4 [1].",
        "Call json.dumps() with indent=4 [2].",
        "They go to /var/log/app [2].",
    ],
)
def test_an_answer_its_cited_block_holds_is_supported(answer: str) -> None:
    verdict = verify(answer, "What is the rule?", BLOCKS, min_overlap=0.5)
    assert verdict.supported, verdict.problems


@pytest.mark.parametrize(
    ("answer", "invented"),
    [
        ("Within 300 days [1].", "300"),  # a longer number is not the block's number
        ("It was released on 2022-02-22 [1].", "2022-02-22"),
        ("Use form EXP-5 [1].", "EXP-5"),
        ("Within 30 days [2].", "30"),  # in a block, but not in the one it cites
    ],
)
def test_a_number_or_identifier_absent_from_the_cited_block_fails(answer: str, invented: str) -> None:
    verdict = verify(answer, "What is the rule?", BLOCKS, min_overlap=0.0)
    assert not verdict.supported
    assert any(invented in problem for problem in verdict.problems)


def test_an_answer_of_other_words_than_its_blocks_fails_the_overlap_floor() -> None:
    verdict = verify("Managers approve travel bookings quickly [1].", "Who approves?", BLOCKS, min_overlap=0.5)
    assert not verdict.supported and "words are in the cited blocks" in verdict.problems[0]


def test_an_answer_that_only_restates_the_question_fails() -> None:
    question = "Is the UID range allocated centrally?"
    verdict = verify("The UID range is allocated centrally.", question, ["UID ranges are allocated centrally."], 0.0)
    assert not verdict.supported and "restates the question" in verdict.problems[0]


def test_a_refusal_cut_short_is_no_answer() -> None:
    # The reader kept from refusing ("documents" banned after "The") may stop at "The document".
    verdict = verify("The document [1].", "Which form?", ["The document lists form EXP-4."], 0.0)
    assert not verdict.supported and "refusal cut short" in verdict.problems[0]


def test_an_answer_of_symbols_alone_must_occur_in_its_block() -> None:
    blocks = ["Dialect.delimiter: a one-character string used to separate fields. It defaults to ','."]
    assert verify("',' [1].", "What does the delimiter default to?", blocks, 0.5).supported
    assert not verify("';' [1].", "What does the delimiter default to?", blocks, 0.5).supported
    assert not verify(". [1]", "What does the delimiter default to?", blocks, 0.5).supported  # says nothing


def test_an_answer_citing_the_wrong_block_cites_the_block_that_backs_it() -> None:
    assert not verify("Use form EXP-4 [2].", "Which form?", BLOCKS, min_overlap=0.5).supported
    moved = recited("Use form EXP-4 [2].", "Which form?", BLOCKS, min_overlap=0.5)
    assert moved is not None and moved[0] == "Use form EXP-4 [1]."
    assert moved[1].supported and moved[1].cited_blocks == [1]
    moved = recited("Use form EXP-4 [2][2].", "Which form?", BLOCKS, min_overlap=0.5)
    assert moved is not None and moved[0] == "Use form EXP-4 [1]." and moved[1].supported
    # Without an exact fact to place it, an answer stays where it is.
    assert recited("Pretty output [1].", "How is it printed?", BLOCKS, min_overlap=0.5) is None
    # Backed by no single block: it stays, unsupported.
    assert recited("Use form EXP-4 in /var/log/app [1].", "Which form?", BLOCKS, min_overlap=0.5) is None


def test_without_citations_all_blocks_count_and_bad_numbers_are_ignored() -> None:
    assert cited_blocks("No marker here.", 3) == [1, 2, 3]
    assert cited_blocks("See [2] and [9].", 3) == [2]


def test_numbers_found_in_no_cited_block_are_listed() -> None:
    assert unsupported_numbers("Within 30 days, or 45 [1].", BLOCKS) == ["45"]
    assert unsupported_numbers("Within 30 days [1].", BLOCKS) == []


def test_a_repeated_sentence_is_a_loop() -> None:
    assert repeats_a_sentence("The fee is 5 euros. The fee is 5 euros. The fee is 5 euros.")
    assert not repeats_a_sentence("The fee is 5 euros [1]. It is paid monthly [1].")


def test_a_short_loop_is_cut_to_one_sentence() -> None:
    assert drop_repeated_sentences("You can't. You can't.") == "You can't."
    assert (
        drop_repeated_sentences("It is 5 euros [1]. It is 5 euros [2]. Paid monthly.")
        == "It is 5 euros [1]. Paid monthly."
    )
    assert not repeats_a_sentence(drop_repeated_sentences("A b c. A b c. A b c."))
    assert drop_repeated_sentences("One line.\n\nAnother line.") == "One line.\n\nAnother line."  # untouched
