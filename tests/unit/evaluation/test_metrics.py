from __future__ import annotations

import numpy as np
import pytest

from evaluation.metrics import (
    abstention_report,
    calibrate_threshold,
    contains_answer,
    exact_match,
    f1_score,
    first_hit_rank,
    latency_report,
    markdown_table,
    normalize_answer,
    percentile,
    retrieval_report,
)


def test_normalization_is_squads_own() -> None:
    # The official script deletes punctuation without a space, so a hyphen joins the words.
    assert normalize_answer("The  Norman-Conquest!") == "normanconquest"
    assert normalize_answer("  An Apple, a day; THE end. ") == "apple day end"
    assert normalize_answer("theory of an anthem") == "theory of anthem"
    assert normalize_answer("The keyword ‘elif’ is short for “else if”") == "keyword elif is short for else if"


def test_an_answer_contains_a_gold_as_whole_words_or_a_gold_of_symbols_as_written() -> None:
    assert contains_answer("Use the Decimal class [1].", ["decimal"])
    assert not contains_answer("Use decimals [1].", ["decimal"])
    # Normalization would empty these golds, and every answer would hold them; they are compared as written.
    assert contains_answer("It defaults to ','.", ["','"]) and not contains_answer("A comma.", ["','"])
    assert contains_answer("The placeholder is ' [...]' [2].", ["' [...]'"])
    assert not contains_answer("An empty list [1].", ["''"])


def test_exact_match_takes_the_best_gold() -> None:
    assert exact_match("the Normans", ["Vikings", "Normans"]) == 1.0
    assert exact_match("Normans of France", ["Vikings", "Normans"]) == 0.0


def test_f1_is_token_overlap_best_over_golds() -> None:
    # 2 of 4 predicted tokens ("norman conquest of england") against 2 gold tokens: P 1/2, R 1, F1 2/3.
    assert f1_score("The Norman conquest of England", ["Norman conquest"]) == pytest.approx(2 / 3)
    # Against "normans": P 1/2, R 1, F1 2/3; against "normans in france": P 1, R 2/3, F1 0.8, the better.
    assert f1_score("Normans France", ["Normans", "Normans in France"]) == pytest.approx(0.8)
    assert f1_score("Vikings", ["Normans"]) == 0.0


def test_without_golds_only_an_empty_answer_scores() -> None:
    assert exact_match("", []) == 1.0
    assert f1_score("", []) == 1.0
    assert f1_score("the Normans", []) == 0.0


def test_first_hit_rank_is_one_based() -> None:
    assert first_hit_rank([False, False, True, True]) == 3
    assert first_hit_rank([True]) == 1
    assert first_hit_rank([False, False]) is None
    assert first_hit_rank([]) is None


def test_retrieval_report_on_a_hand_computed_example() -> None:
    report = retrieval_report([1, 2, 4, None, 7], ks=(1, 3, 5, 10))
    assert report == pytest.approx(
        {"hit@1": 1 / 5, "hit@3": 2 / 5, "hit@5": 3 / 5, "hit@10": 4 / 5, "mrr": (1 + 1 / 2 + 1 / 4 + 1 / 7) / 5}
    )
    assert retrieval_report([]) == {"hit@1": 0.0, "hit@3": 0.0, "hit@5": 0.0, "hit@10": 0.0, "mrr": 0.0}


def test_abstention_report_counts_abstentions() -> None:
    should = [True, True, False, False, True]
    did = [True, False, True, False, True]
    report = abstention_report(should, did)
    assert report == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "accuracy": 3 / 5})


def test_no_abstention_made_or_wanted_scores_zero() -> None:
    assert abstention_report([True, False], [False, False])["precision"] == 0.0
    assert abstention_report([False, False], [True, False])["recall"] == 0.0
    with pytest.raises(ValueError, match="2 expectations but 1 outcomes"):
        abstention_report([True, False], [True])


def test_separable_scores_get_a_separating_threshold_and_perfect_f1() -> None:
    threshold, report = calibrate_threshold([0.8, 0.7, 0.9], [0.2, 0.3])
    assert 0.3 < threshold < 0.7
    assert report == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}


def test_overlapping_scores_get_the_best_f1_threshold() -> None:
    # Abstaining below 0.725 catches all 4 unanswerable and 2 answerable: P 4/6, R 1, F1 0.8 (best by hand).
    threshold, report = calibrate_threshold([0.4, 0.6, 0.8, 0.9], [0.2, 0.3, 0.5, 0.65])
    assert threshold == pytest.approx(0.725)
    assert report == pytest.approx({"precision": 4 / 6, "recall": 1.0, "f1": 0.8, "accuracy": 6 / 8})


def test_ties_go_to_the_lower_threshold() -> None:
    # Below 0.2: P 1, R 1/2 (F1 2/3); above 0.5: P 1/2, R 1 (F1 2/3 again): answer more.
    threshold, _ = calibrate_threshold([0.3, 0.4], [0.1, 0.5])
    assert threshold == pytest.approx(0.2)


def test_without_unanswerable_questions_nothing_abstains() -> None:
    threshold, report = calibrate_threshold([0.5, 0.6], [])
    assert threshold < 0.5
    assert report["accuracy"] == 1.0
    with pytest.raises(ValueError, match="no scores"):
        calibrate_threshold([], [])


@pytest.mark.parametrize("q", [0, 10, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = [12.0, 3.5, 7.25, 100.0, 41.0, 8.0, 8.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_refuses_bad_input() -> None:
    assert percentile([4.0], 95) == 4.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 150)


def test_latency_report_per_stage() -> None:
    report = latency_report({"embed": [10.0, 20.0, 30.0, 40.0], "generate": [900.0], "rerank": []})
    assert report == {"embed": {"p50": 25.0, "p95": 38.5, "n": 4}, "generate": {"p50": 900.0, "p95": 900.0, "n": 1}}


def test_markdown_table_formats_floats_and_blanks() -> None:
    rows: list[dict[str, object]] = [{"set": "squad", "hit@1": 0.5, "n": 20}, {"set": "a|b", "hit@1": 2 / 3}]
    assert markdown_table(rows, ["set", "hit@1", "n"]) == (
        "| set | hit@1 | n |\n| --- | --- | --- |\n| squad | 0.500 | 20 |\n| a\\|b | 0.667 |  |\n"
    )
