"""The refusal floor fitted from the reader's refusal probability and the best cosine, as the service applies it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.refusal_floor import Signals, fit_floor, logistic_regression, outcome


def test_logistic_regression_finds_the_direction_that_separates() -> None:
    features = np.array([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]])
    w_first, w_second, _ = logistic_regression(features, np.array([0.0, 1.0, 0.0, 1.0]))
    assert w_first > 0 > w_second


def test_the_floor_uses_the_cosine_where_the_refusal_alone_cannot_tell() -> None:
    # Answerable questions have well-matching blocks; the unanswerable ones' refusals are likelier only at
    # the same cosine: no flat floor separates them, a floor growing with the cosine does.
    answerable = [Signals(True, math.log(p), 0.75) for p in (0.05, 0.2, 0.4, 0.6)]
    unanswerable = [Signals(False, math.log(p), 0.40) for p in (0.3, 0.45, 0.7, 0.9)]
    declined_by_retrieval = [Signals(False, None, 0.2), Signals(True, None, 0.3)]
    signals = answerable + unanswerable + declined_by_retrieval
    floor = fit_floor(signals * 10, score_threshold=0.386)  # enough questions for the L2 penalty not to rule
    assert floor.refusal_cosine_weight > 0
    decisions = [floor.declines(s) for s in signals]
    assert decisions == [False] * 4 + [True] * 4 + [True, True]
    assert outcome(signals, decisions) == (4 / 5, 1.0)  # the answerable question retrieval declined stays declined


def test_a_refusal_that_means_nothing_fits_no_floor() -> None:
    signals = [Signals(True, math.log(0.9), 0.5), Signals(False, math.log(0.1), 0.5)] * 3
    with pytest.raises(ValueError, match="no floor to fit"):
        fit_floor(signals, score_threshold=0.386)
