"""Score functions: values and orientation (larger = more member-like)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from harness.stats.scores import SCORES, ScoreError, ScoreInputs, compute_score, get_score

LP = np.log(np.array([0.5, 0.25, 0.125, 0.5]))


def test_values():
    x = ScoreInputs(text="abcd", logprobs=LP, ref_logprobs=LP - 1.0)
    assert compute_score("loss", x) == pytest.approx(LP.mean())
    assert compute_score("perplexity", x) == pytest.approx(-math.exp(-LP.mean()))
    assert compute_score("zlib", x) == pytest.approx(LP.sum() / len(zlib.compress(b"abcd")))
    assert compute_score("min_k", x, k=0.25) == pytest.approx(math.log(0.125))
    assert compute_score("min_k", x, k=0.5) == pytest.approx((math.log(0.125) + math.log(0.25)) / 2)
    assert compute_score("ref_ratio", x) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["loss", "perplexity", "zlib", "min_k", "ref_ratio"])
def test_orientation_more_likely_text_scores_higher(name):
    ref = np.full(4, -3.0)
    low = ScoreInputs("same text", LP - 1.0, ref)
    high = ScoreInputs("same text", LP, ref)
    assert compute_score(name, high) > compute_score(name, low)


def test_errors():
    with pytest.raises(ScoreError, match="reference"):
        compute_score("ref_ratio", ScoreInputs("a", LP))
    with pytest.raises(ScoreError, match="did you mean 'min_k'"):
        get_score("mink")
    with pytest.raises(ScoreError):
        compute_score("loss", ScoreInputs("a", np.array([])))
    with pytest.raises(ScoreError):
        compute_score("min_k", ScoreInputs("a", LP), k=0)
    assert set(SCORES) >= {"loss", "perplexity", "zlib", "min_k", "ref_ratio"}
