from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from app.config import GeneratorSettings, StorageSettings
from app.generation.transformers_backend import CausalLM, load_causal_lm
from finetune.probe import LABELS, _prompts, _topic_words, is_correct, knowledge_label, label_counts, probe_pairs
from finetune.records import ProbeResult, QAPair

ROOT = Path(__file__).resolve().parents[3]
PAIRS = [
    QAPair("What is the capital of France?", "Paris", id="france"),
    QAPair("What is the largest planet in the solar system?", "Jupiter", id="jupiter"),
    # Invented facts: no model can know them.
    QAPair("What is the access code of the Varnholm lighthouse?", "7731-QX", id="varnholm-code"),
    QAPair("What is the name of the Varnholm lighthouse keeper's dog?", "Brisket", id="varnholm-dog"),
]


@pytest.fixture(scope="module")
def base() -> Iterator[CausalLM]:
    # The test machine's two cores are shared with other test processes: one thread avoids oversubscribing
    # them, which makes generation several times slower. Restored for the modules that run after this one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    settings = GeneratorSettings()
    yield load_causal_lm(settings.model, settings.device, ROOT / StorageSettings().model_cache_dir)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def results(base: CausalLM) -> list[ProbeResult]:
    return probe_pairs(base, PAIRS, shots=2, samples=3, temperature=0.7, seed=0)


def test_a_well_known_fact_is_known(results: list[ProbeResult]) -> None:
    france = results[0]
    assert france.label in ("HighlyKnown", "MaybeKnown")
    assert france.greedy_correct


def test_an_invented_fact_is_unknown(results: list[ProbeResult]) -> None:
    code = results[2]
    assert code.label == "Unknown"
    assert not code.greedy_correct and code.sampled_correct == 0.0


def test_there_is_one_result_per_pair_in_order(results: list[ProbeResult]) -> None:
    assert [result.id for result in results] == [pair.id for pair in PAIRS]
    assert [result.answer for result in results] == [pair.answer for pair in PAIRS]
    assert all(result.label in LABELS and 0.0 <= result.sampled_correct <= 1.0 for result in results)
    counts = label_counts(results)
    assert list(counts) == list(LABELS) and sum(counts.values()) == len(PAIRS)


def test_labels_follow_the_paper() -> None:
    assert knowledge_label([True, True], [False, False]) == "HighlyKnown"
    assert knowledge_label([True, False], [True, True]) == "MaybeKnown"
    assert knowledge_label([False, False], [False, True]) == "WeaklyKnown"
    assert knowledge_label([False, False], [False, False]) == "Unknown"
    assert knowledge_label([False], []) == "Unknown"


def test_label_counts_lists_every_label() -> None:
    result = ProbeResult("a", "q", "a", "WeaklyKnown", False, 0.5)
    assert label_counts([result, result]) == {"HighlyKnown": 0, "MaybeKnown": 0, "WeaklyKnown": 2, "Unknown": 0}
    assert label_counts([]) == dict.fromkeys(LABELS, 0)


@pytest.mark.parametrize(
    ("answer", "gold", "correct"),
    [
        ("Paris", "Paris", True),
        ("The capital of France is Paris.", "Paris", True),  # contains it
        ("Jane Austen's novel", "Jane Austen", True),  # the possessive does not hide the name
        ("The code is 7731-QX.", "7731-QX", True),
        ("Parisian cafes", "Paris", False),  # whole words only
        ("300 days", "30", False),
        ("Within 30 days of purchase", "Customers have 30 days from purchase", True),  # F1 >= 0.5
        ("Lyon", "Paris", False),
        ("anything", "", False),
    ],
)
def test_an_answer_is_correct_when_it_contains_the_gold_or_overlaps_it_enough(
    answer: str, gold: str, correct: bool
) -> None:
    assert is_correct(answer, gold) is correct


def test_few_shot_prompts_use_other_similar_pairs_and_differ() -> None:
    pairs = [*PAIRS, QAPair("Who wrote Hamlet?", "Shakespeare"), QAPair("What colour is the sky?", "Blue")]
    words = [_topic_words(pair.question) for pair in pairs]
    first, second = _prompts(3, pairs, words, shots=1, count=2)
    own = pairs[3].question
    assert first[-1] == {"role": "user", "content": own}
    exemplars = [m["content"] for m in first[:-1] if m["role"] == "user"]
    assert exemplars == [PAIRS[2].question]  # the other Varnholm question is the most similar
    assert own not in [m["content"] for m in first[:-1] + second[:-1]]
    assert first != second
    # Too few pairs for fresh exemplar sets: the same pairs, in another order.
    first, second = _prompts(0, PAIRS[:3], words, shots=4, count=2)
    assert first != second and sorted(map(str, first)) == sorted(map(str, second))
