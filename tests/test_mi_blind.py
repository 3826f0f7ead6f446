"""Blind baselines (never see a model) and the shift verdict built on them."""

from __future__ import annotations

import numpy as np
import pytest

from harness.mi.blind import bag_of_words, blind_baselines, max_year, year_mentions, year_rule
from harness.mi.shift import NO_BOUND, shift_verdict
from harness.stats.metrics import MIMetrics, mi_metrics

WORDS = ("alpha beta gamma delta epsilon zeta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega").split()


def _texts(n: int, rng: np.random.Generator, extra: str = "") -> list[str]:
    return [" ".join(rng.choice(WORDS, 12)) + extra for _ in range(n)]


def test_year_rule_follows_the_blind_mia_reference():
    # Blind-MIA date_detection_basic: max 4-digit number < cutoff -> 1, else 0, none -> 0.5
    assert max_year("in 1999 and 2021") == 2021
    assert max_year("port 8080 of 1999") == 8080  # any 4 digits count, as there
    assert max_year("no year here") is None
    years = [max_year(t) for t in ("written 2019", "written 2023", "undated")]
    assert list(year_rule(years, 2022)) == [1.0, 0.0, 0.5]


def test_year_rule_with_cutoff_chosen_out_of_fold_separates_a_temporal_split():
    rng = np.random.default_rng(0)
    old, new = rng.integers(2010, 2020, 40), rng.integers(2022, 2025, 40)
    members = [f"{t} updated {y}" for t, y in zip(_texts(40, rng), old, strict=True)]
    later = [f"{t} updated {y}" for t, y in zip(_texts(40, rng), new, strict=True)]
    b = year_mentions(members + later, [True] * 40 + [False] * 40, folds=5, seed=1)
    assert mi_metrics(b.scores[:40], b.scores[40:], n_bootstrap=0).auc == pytest.approx(1.0)
    assert b.details["with_year"] == 80 and len(b.details["cutoffs"]) == 5


def test_bag_of_words_finds_a_vocabulary_shift_and_not_a_random_split():
    rng = np.random.default_rng(2)
    members = _texts(60, rng)
    shifted = [t + " tensor gradient" for t in _texts(60, rng)]
    labels = [True] * 60 + [False] * 60
    s = bag_of_words(members + shifted, labels, folds=5, seed=0).scores
    assert mi_metrics(s[:60], s[60:], n_bootstrap=0).auc > 0.95
    same = _texts(120, rng)
    s = bag_of_words(same, labels, folds=5, seed=0).scores
    res = mi_metrics(s[:60], s[60:], n_bootstrap=500, seed=0)
    assert res.ci["auc"][0] < 0.5 < res.ci["auc"][1] + 0.05  # at chance within sampling noise


def test_blind_scores_are_deterministic_given_the_seed():
    rng = np.random.default_rng(3)
    texts, labels = _texts(30, rng), [True] * 15 + [False] * 15
    a = blind_baselines(texts, labels, 3, 7)
    b = blind_baselines(texts, labels, 3, 7)
    assert [x.name for x in a] == ["bag-of-words", "year-rule"]
    assert all(np.array_equal(x.scores, y.scores) for x, y in zip(a, b, strict=True))


def _m(auc: float, lo: float, hi: float) -> MIMetrics:
    return MIMetrics(auc, {0.01: 0.0}, 1.0, 100, 100, {"auc": (lo, hi)}, 0.95)


def test_shift_verdict_rule():
    model = {"loss": _m(0.70, 0.63, 0.77), "min_k": _m(0.80, 0.74, 0.86)}
    flagged = shift_verdict(model, {"blind:bag-of-words": _m(0.78, 0.72, 0.84)})
    assert flagged.shifted and flagged.best_score == "min_k"
    assert "not evidence of membership" in flagged.sentence()
    partial = shift_verdict(model, {"blind:bag-of-words": _m(0.65, 0.58, 0.72)})
    assert not partial.shifted and partial.blind_above_chance
    assert "Partial shift" in partial.sentence()
    chance = shift_verdict({"loss": _m(0.52, 0.45, 0.59)}, {"blind:x": _m(0.51, 0.44, 0.58)})
    assert not chance.shifted and not chance.blind_above_chance  # at chance: not "shifted"
    two = shift_verdict(model, {"blind:a": _m(0.5, 0.45, 0.55), "blind:b": _m(0.79, 0.7, 0.85)})
    assert two.shifted and two.best_blind == "blind:b"
    assert "no false-positive bound" in NO_BOUND and "canaries" in NO_BOUND
