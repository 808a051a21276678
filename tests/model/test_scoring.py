"""Bands, top factors and trends of score rows."""

from __future__ import annotations

import numpy as np
import pytest

from dealscore.model.reasons import top_factors
from dealscore.model.scoring import bands, trends


def test_bands_by_probability_edges_included():
    p = np.array([0.05, 0.15, 0.39, 0.4, 0.69, 0.7, 0.99])
    assert bands(p).tolist() == ["D", "C", "C", "B", "B", "A", "A"]
    with pytest.raises(ValueError, match="must decrease"):
        bands(p, (0.2, 0.4, 0.1))


def test_top_factors_strongest_first_and_only_of_their_sign():
    credits = np.array([[0.5, -0.2, 0.1, -0.9, 0.0], [0.0, 0.3, 0.0, 0.0, 0.0]])
    up, down = top_factors(credits, k=3)
    assert up.tolist() == [[0, 2, -1], [1, -1, -1]]
    assert down.tolist() == [[3, 1, -1], [-1, -1, -1]]


def test_top_factors_match_a_full_sort():
    credits = np.random.default_rng(4).normal(size=(500, 30))
    up, down = top_factors(credits, k=3)
    assert (up == np.argsort(-credits, axis=1)[:, :3]).all()
    assert (down == np.argsort(credits, axis=1)[:, :3]).all()


def test_trend_needs_a_real_move():
    current = np.array([0.5, 0.5, 0.5, 0.5])
    previous = np.array([0.3, 0.48, 0.7, np.nan])
    assert trends(current, previous).tolist() == ["improving", "steady", "declining", "new"]


def test_a_move_across_model_versions_is_not_a_trend():
    # given scores whose previous one came from the same model, another model, or none
    current = np.array([0.5, 0.5, 0.5])
    previous = np.array([0.3, 0.3, np.nan])
    same_model = np.array([True, False, False])
    # then only the same model's move is a trend
    assert trends(current, previous, 0.05, same_model).tolist() == [
        "improving",
        "model_changed",
        "new",
    ]
