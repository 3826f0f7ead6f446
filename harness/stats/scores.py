"""Score functions: pure maps from per-token log-probs (and text, reference) to one float.

Orientation everywhere: larger = more member-like. Each function documents its own sign.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


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


def loss_score(x: ScoreInputs) -> float:
    """Negative mean token NLL (= mean log-prob); larger = lower loss = more member-like."""
    return float(_check(x.logprobs).mean())


def perplexity_score(x: ScoreInputs) -> float:
    """Negative perplexity, -exp(mean NLL); larger = lower perplexity."""
    return float(-np.exp(-_check(x.logprobs).mean()))


def zlib_score(x: ScoreInputs) -> float:
    """Total log-prob (nats) over zlib-compressed length in bytes (Carlini et al. 2021).

    The target's NLL is normalised by a model-free measure of how compressible the text
    is; larger (less NLL per compressed byte) = more member-like.
    """
    lp = _check(x.logprobs)
    return float(lp.sum() / len(zlib.compress(x.text.encode("utf-8"))))


def min_k_score(x: ScoreInputs, k: float = 0.2) -> float:
    """Min-K% (Shi et al. 2024): mean of the lowest k fraction of token log-probs; larger = member."""
    if not 0 < k <= 1:
        raise ScoreError(f"min_k fraction k must be in (0, 1], got {k}")
    lp = np.sort(_check(x.logprobs))
    n = max(1, int(np.ceil(k * lp.size)))
    return float(lp[:n].mean())


def min_k_pp_score(x: ScoreInputs, k: float = 0.2) -> float:
    """Min-K%++ (Zhang et al. 2024): mean of the lowest k fraction of (log p(x_t) - mu_t) / sigma_t.

    mu_t and sigma_t^2 are the mean and variance of log p(z | x_<t) for z drawn from the
    model's own next-token distribution, so each token is scored by how far it sits above the
    model's typical log-prob at that position (training pushes members toward local maxima).
    Larger = more member-like. Positions where the next-token distribution is a point mass
    (sigma_t = 0) have no defined z-score and are an error.
    """
    if not 0 < k <= 1:
        raise ScoreError(f"min_k_pp fraction k must be in (0, 1], got {k}")
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
    z = np.sort((lp - mu) / np.sqrt(var))
    n = max(1, int(np.ceil(k * z.size)))
    return float(z[:n].mean())


def ref_ratio_score(x: ScoreInputs) -> float:
    """Reference ratio: mean log-prob under target minus under reference.

    Equals log ppl_ref - log ppl_target; larger = target finds the text unusually easy.
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


SCORES: dict[str, ScoreFunction] = {
    s.name: s
    for s in (
        ScoreFunction("loss", loss_score, doc="mean token log-prob (-loss)"),
        ScoreFunction("perplexity", perplexity_score, doc="-perplexity"),
        ScoreFunction("zlib", zlib_score, doc="log-prob per zlib byte"),
        ScoreFunction("min_k", min_k_score, doc="Min-K% (k=0.2)"),
        ScoreFunction(
            "min_k_pp", min_k_pp_score, frozenset({"vocab_stats"}), "Min-K%++ (k=0.2)"
        ),
        ScoreFunction("ref_ratio", ref_ratio_score, frozenset({"reference"}), "log ppl_ref - log ppl"),
    )
}


def get_score(name: str) -> ScoreFunction:
    if name not in SCORES:
        import difflib

        close = difflib.get_close_matches(name, list(SCORES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ScoreError(f"unknown score {name!r}{hint} (known: {', '.join(SCORES)})")
    return SCORES[name]


def compute_score(name: str, x: ScoreInputs, **options: float) -> float:
    """Apply a named score with its options (e.g. k for min_k)."""
    return get_score(name).fn(x, **options)
