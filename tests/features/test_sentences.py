"""Reasons in plain words, for every feature, known or missing."""

from __future__ import annotations

import numpy as np

from dealscore.features import FEATURE_NAMES
from dealscore.features.sentences import sentences


def test_a_reason_reads_like_a_sentence():
    names = np.array(["days_since_two_way", "amount_change_pct", "late_entry", None], dtype=object)
    out = sentences(names, np.array([23.4, -0.25, 1.0, 5.0]))
    assert out.tolist() == [
        "no two-way contact in 23 days",
        "amount changed -25% since first quoted",
        "entered the pipeline late (proposal or later)",
        None,
    ]


def test_a_missing_value_is_a_fact_too():
    out = sentences(np.array(["days_since_two_way"] * 2, dtype=object), np.array([np.nan, np.nan]))
    assert out.tolist() == ["no two-way contact yet"] * 2
    unknown = sentences(np.array(["won_value_size_band"], dtype=object), np.array([np.nan]))
    assert unknown.tolist() == ["typical won deal in this size band: not known"]


def test_every_feature_has_words_for_any_value():
    names = np.repeat(np.array(FEATURE_NAMES, dtype=object), 3)
    values = np.tile([0.5, np.nan, 12.0], len(FEATURE_NAMES))
    out = sentences(names, values)
    assert all(isinstance(text, str) and text and "nan" not in text for text in out)
