"""Score functions: pure maps from per-token log-probs (and text, reference) to one float.

Orientation everywhere: larger = more member-like. Each function documents its own sign.

Definitions follow the published code (checked 2026-11; file @ commit):
MIMIR `mimir/attacks/{loss,zlib,min_k,min_k_plus_plus,reference}.py` @ 1b6fd649 (iamgroot42/
mimir), the Min-K%++ authors' `run.py` @ 5596c65d (zjysteven/mink-plus-plus), the Min-K%
authors' `src/run.py` @ a5048f93 (swj0419/detect-pretrain-code) and Carlini et al.'s
`extraction.py` @ baafa173 (ftramer/LM_Memorization). The references report "lower = member"
losses or "larger = member" log-likelihoods; the sign here is always "larger = member", which
leaves every ROC curve and rank unchanged.

First token / BOS: the harness scores every token of the text, the first one conditioned on the
tokenizer's BOS token (else EOS). The references score what `tokenizer.encode(text)` returns
after dropping position 0: for tokenizers that prepend BOS (LLaMA) that is the same set of
tokens; for tokenizers that do not (GPT-2, Pythia) the references drop the first real token,
so their mean runs over n-1 tokens where ours runs over n. That is the one remaining
difference in what is averaged; every formula below is the reference's.

Score-definition versions: reports record `SCORE_DEFINITIONS` in their provenance. Version 1
(before 2026-11-30) had `zlib` = total log-prob / zlib bytes and Min-K%/Min-K%++ with
ceil(k*n) tokens; those definitions live on as `zlib_sum`, `min_k_ceil` and `min_k_pp_ceil`
so that `tdp verify` can re-score an older report with the definition it was made with
(`legacy_name`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: version of the score definitions below, recorded in every report's provenance
SCORE_DEFINITIONS = 2
#: per older version: score name as written in such a report -> the name that computes it now
LEGACY_SCORES: dict[int, dict[str, str]] = {
    1: {"zlib": "zlib_sum", "min_k": "min_k_ceil", "min_k_pp": "min_k_pp_ceil"},
}


class ScoreError(ValueError):
    """A score cannot be computed from the inputs given (e.g. a missing reference)."""


@dataclass(frozen=True)
class ScoreInputs:
    """What one item brings to the score functions."""

    text: str
    logprobs: np.ndarray
    ref_logprobs: np.ndarray | None = None
    #: per token, E_{z~p}[log p(z | prefix)] and Var_{z~p}[log p(z | prefix)] (VocabStats)
    vocab_mean: np.ndarray | None = None
    vocab_var: np.ndarray | None = None


def _check(lp: np.ndarray) -> np.ndarray:
    lp = np.asarray(lp, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0:
        raise ScoreError("need a non-empty 1-D array of token log-probs")
    return lp


def _check_k(name: str, k: float) -> None:
    if not 0 < k <= 1:
        raise ScoreError(f"{name} fraction k must be in (0, 1], got {k}")


def lowest_k_count(n: int, k: float) -> int:
    """How many of n values Min-K% averages: floor(k*n) as every reference computes it
    (`int(len(x) * k)`), but at least 1. Where floor(k*n) = 0 the references average an
    empty slice and get NaN; here the single lowest value is used instead."""
    return max(1, int(n * k))


def loss_score(x: ScoreInputs) -> float:
    """Negative mean token NLL (= mean log-prob); larger = lower loss = more member-like.

    MIMIR's LOSSAttack returns mean NLL (`get_ll` = -mean(log-probs)); Min-K%++'s run.py
    records `ll = -loss`: the same number with this sign."""
    return float(_check(x.logprobs).mean())


def perplexity_score(x: ScoreInputs) -> float:
    """Negative perplexity, -exp(mean NLL); larger = lower perplexity."""
    return float(-np.exp(-_check(x.logprobs).mean()))


def _zlib_bytes(text: str) -> int:
    return len(zlib.compress(text.encode("utf-8")))


def zlib_score(x: ScoreInputs) -> float:
    """Mean log-prob (nats per token) over the zlib-compressed length of the text in bytes.

    Exactly Min-K%++'s run.py (`ll / len(zlib.compress(bytes(text, 'utf-8')))`, ll = -loss);
    MIMIR's ZLIBAttack and Min-K%'s run.py compute mean NLL / zlib length (the same number,
    negated); Carlini et al.'s extraction.py ranks by zlib length / log(perplexity), the
    reciprocal of mean NLL / zlib length, which orders texts identically (both are positive).
    Larger = more member-like.
    """
    return float(_check(x.logprobs).mean() / _zlib_bytes(x.text))


def zlib_sum_score(x: ScoreInputs) -> float:
    """Score-definition v1 `zlib`: *total* log-prob over zlib bytes (no reference uses it).

    Kept only so that reports made before SCORE_DEFINITIONS 2 can be re-scored as made."""
    return float(_check(x.logprobs).sum() / _zlib_bytes(x.text))


def _lowest_mean(values: np.ndarray, count: int) -> float:
    return float(np.sort(values)[:count].mean())


def min_k_score(x: ScoreInputs, k: float = 0.2) -> float:
    """Min-K% (Shi et al. 2024): mean of the floor(k*n) lowest token log-probs; larger = member.

    As in Min-K%'s run.py (`k_length = int(len(all_prob)*ratio)`), MIMIR's MinKProbAttack
    (window 1, stride 1) and Min-K%++'s run.py; see `lowest_k_count` for texts so short that
    floor(k*n) = 0.
    """
    _check_k("min_k", k)
    lp = _check(x.logprobs)
    return _lowest_mean(lp, lowest_k_count(lp.size, k))


def min_k_ceil_score(x: ScoreInputs, k: float = 0.2) -> float:
    """Score-definition v1 `min_k`: ceil(k*n) lowest log-probs (kept for re-scoring old reports)."""
    _check_k("min_k_ceil", k)
    lp = _check(x.logprobs)
    return _lowest_mean(lp, max(1, math.ceil(k * lp.size)))


def _min_k_pp_z(x: ScoreInputs) -> np.ndarray:
    """Per token (log p(x_t) - mu_t) / sigma_t, checked."""
    if x.vocab_mean is None or x.vocab_var is None:
        raise ScoreError(
            "min_k_pp needs per-position vocabulary statistics (vocab_stats), which this "
            "backend does not provide; use the hf backend"
        )
    lp = _check(x.logprobs)
    mu = np.asarray(x.vocab_mean, dtype=np.float64)
    var = np.asarray(x.vocab_var, dtype=np.float64)
    if mu.shape != lp.shape or var.shape != lp.shape:
        raise ScoreError(
            f"vocab stats shapes {mu.shape}, {var.shape} differ from log-probs {lp.shape}"
        )
    if np.any(var <= 0) or not np.all(np.isfinite(var)):
        raise ScoreError("min_k_pp: a position has zero or non-finite log-prob variance")
    return (lp - mu) / np.sqrt(var)


def min_k_pp_score(x: ScoreInputs, k: float = 0.2) -> float:
    """Min-K%++ (Zhang et al. 2024): mean of the floor(k*n) lowest (log p(x_t) - mu_t) / sigma_t.

    mu_t and sigma_t^2 are the mean and variance of log p(z | x_<t) for z drawn from the
    model's own next-token distribution, as in Min-K%++'s run.py (`mu = (probs *
    log_probs).sum(-1)`, `sigma = (probs * log_probs**2).sum(-1) - mu**2`, divided by
    `sigma.sqrt()`, `k_length = int(len(mink_plus) * ratio)`) and MIMIR's
    MinKPlusPlusAttack. Larger = more member-like. Positions where the next-token
    distribution is a point mass (sigma_t = 0) have no z-score and are an error.
    """
    _check_k("min_k_pp", k)
    z = _min_k_pp_z(x)
    return _lowest_mean(z, lowest_k_count(z.size, k))


def min_k_pp_ceil_score(x: ScoreInputs, k: float = 0.2) -> float:
    """Score-definition v1 `min_k_pp`: ceil(k*n) lowest z-scores (kept for old reports)."""
    _check_k("min_k_pp_ceil", k)
    z = _min_k_pp_z(x)
    return _lowest_mean(z, max(1, math.ceil(k * z.size)))


def ref_ratio_score(x: ScoreInputs) -> float:
    """Reference ratio: mean log-prob under target minus under reference.

    Equals log ppl_ref - log ppl_target; larger = target finds the text unusually easy.
    MIMIR's ReferenceAttack returns loss - ref_loss (the same number, negated) and Min-K%'s
    run.py `p1_likelihood - p_ref_likelihood`.
    """
    if x.ref_logprobs is None:
        raise ScoreError("ref_ratio needs a reference model (--reference)")
    return float(_check(x.logprobs).mean() - _check(x.ref_logprobs).mean())


@dataclass(frozen=True)
class ScoreFunction:
    name: str
    fn: Callable[..., float]
    needs: frozenset[str] = field(default_factory=frozenset)  # "reference", "vocab_stats"
    doc: str = ""
    #: kept only to re-score reports made under an older score-definition version
    legacy: bool = False


VOCAB = frozenset({"vocab_stats"})

SCORES: dict[str, ScoreFunction] = {
    s.name: s
    for s in (
        ScoreFunction("loss", loss_score, doc="mean token log-prob (-loss)"),
        ScoreFunction("perplexity", perplexity_score, doc="-perplexity"),
        ScoreFunction("zlib", zlib_score, doc="mean log-prob per zlib byte"),
        ScoreFunction("min_k", min_k_score, doc="Min-K% (k=0.2, floor)"),
        ScoreFunction("min_k_pp", min_k_pp_score, VOCAB, "Min-K%++ (k=0.2, floor)"),
        ScoreFunction(
            "ref_ratio", ref_ratio_score, frozenset({"reference"}), "log ppl_ref - log ppl"
        ),
        ScoreFunction("zlib_sum", zlib_sum_score, doc="v1 zlib: total log-prob per zlib byte",
                      legacy=True),
        ScoreFunction("min_k_ceil", min_k_ceil_score, doc="v1 Min-K% (ceil)", legacy=True),
        ScoreFunction("min_k_pp_ceil", min_k_pp_ceil_score, VOCAB, "v1 Min-K%++ (ceil)",
                      legacy=True),
    )
}


def legacy_name(name: str, definitions: int) -> str:
    """The score that computes `name` as a report made under `definitions` defined it."""
    if definitions == SCORE_DEFINITIONS:
        return name
    if definitions not in LEGACY_SCORES:
        raise ScoreError(
            f"score definitions version {definitions} is unknown (this harness knows "
            f"{sorted([*LEGACY_SCORES, SCORE_DEFINITIONS])})"
        )
    return LEGACY_SCORES[definitions].get(name, name)


def get_score(name: str) -> ScoreFunction:
    if name not in SCORES:
        import difflib

        close = difflib.get_close_matches(name, list(SCORES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        current = [n for n, s in SCORES.items() if not s.legacy]
        raise ScoreError(f"unknown score {name!r}{hint} (known: {', '.join(current)})")
    return SCORES[name]


def compute_score(name: str, x: ScoreInputs, **options: float) -> float:
    """Apply a named score with its options (e.g. k for min_k)."""
    return get_score(name).fn(x, **options)
