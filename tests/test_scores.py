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
    assert compute_score("zlib", x) == pytest.approx(LP.mean() / len(zlib.compress(b"abcd")))
    assert compute_score("zlib_sum", x) == pytest.approx(LP.sum() / len(zlib.compress(b"abcd")))
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


# --- the published code, transcribed (see harness/stats/scores.py for file @ commit) ----------
def _reference_scores(text: str, token_log_probs: np.ndarray, mu, sigma2, ratio: float) -> dict:
    """What Min-K%++'s run.py computes from the same per-token arrays (larger = member)."""
    ll = float(np.mean(token_log_probs))  # ll = -loss.item()
    out = {"loss": ll, "zlib": ll / len(zlib.compress(bytes(text, "utf-8")))}
    k_length = int(len(token_log_probs) * ratio)
    out["min_k"] = np.mean(np.sort(token_log_probs)[:k_length]).item()
    mink_plus = (token_log_probs - mu) / np.sqrt(sigma2)
    out["min_k_pp"] = np.mean(np.sort(mink_plus)[: int(len(mink_plus) * ratio)]).item()
    return out


def _mimir_zlib(text: str, token_log_probs: np.ndarray) -> float:
    """MIMIR's ZLIBAttack: get_ll (= -mean log-prob) / zlib length; lower = member."""
    return -np.mean(token_log_probs) / len(zlib.compress(bytes(text, "utf-8")))


def _carlini_zlib(text: str, token_log_probs: np.ndarray) -> float:
    """Carlini et al.'s extraction.py: zlib length / log(perplexity); larger = member."""
    return len(zlib.compress(bytes(text, "utf-8"))) / -np.mean(token_log_probs)


@pytest.mark.parametrize("n", [5, 9, 23, 64])
def test_scores_match_the_reference_code(n):
    rng = np.random.default_rng(n)
    lp = np.log(rng.uniform(0.01, 0.9, n))
    mu, var = -rng.uniform(1, 3, n), rng.uniform(0.2, 2, n)
    text = " ".join(f"w{int(v)}" for v in rng.integers(0, 50, n))
    x = ScoreInputs(text, lp, vocab_mean=mu, vocab_var=var)
    want = _reference_scores(text, lp, mu, var, 0.2)
    for name in ("loss", "zlib", "min_k", "min_k_pp"):
        assert compute_score(name, x, **({"k": 0.2} if "min_k" in name else {})) == pytest.approx(
            want[name], rel=1e-12
        ), name
    assert compute_score("zlib", x) == pytest.approx(-_mimir_zlib(text, lp), rel=1e-12)


def test_zlib_ranks_texts_as_carlini_et_al_do():
    rng = np.random.default_rng(0)
    items = [
        (
            " ".join("ab"[j % 2] * int(rng.integers(1, 9)) for j in range(30)),
            np.log(rng.uniform(0.01, 0.9, 30)),
        )
        for _ in range(40)
    ]
    ours = [compute_score("zlib", ScoreInputs(t, lp)) for t, lp in items]
    theirs = [_carlini_zlib(t, lp) for t, lp in items]
    assert list(np.argsort(ours)) == list(np.argsort(theirs))


def test_min_k_where_the_references_have_no_value_uses_the_lowest_token():
    lp = np.log([0.5, 0.1, 0.4])  # floor(0.2 * 3) = 0: the references average an empty slice
    assert compute_score("min_k", ScoreInputs("t", lp), k=0.2) == pytest.approx(math.log(0.1))


def test_legacy_definitions_stay_available_under_their_own_names():
    from harness.stats.scores import LEGACY_SCORES, SCORE_DEFINITIONS, legacy_name

    lp = np.log(np.linspace(0.05, 0.9, 11))
    x = ScoreInputs("t", lp, vocab_mean=np.full(11, -1.0), vocab_var=np.full(11, 0.5))
    assert compute_score("min_k_ceil", x, k=0.2) == pytest.approx(
        np.sort(lp)[:3].mean()
    )  # ceil 2.2
    assert compute_score("min_k", x, k=0.2) == pytest.approx(np.sort(lp)[:2].mean())  # floor 2.2
    z = np.sort((lp + 1.0) / np.sqrt(0.5))
    assert compute_score("min_k_pp_ceil", x, k=0.2) == pytest.approx(z[:3].mean())
    assert legacy_name("zlib", 1) == "zlib_sum" and legacy_name("zlib", SCORE_DEFINITIONS) == "zlib"
    assert legacy_name("loss", 1) == "loss"
    assert set(LEGACY_SCORES[1].values()) <= set(SCORES)
    with pytest.raises(ScoreError, match="version 7"):
        legacy_name("zlib", 7)
