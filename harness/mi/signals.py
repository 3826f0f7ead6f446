"""Per-text statistics of a causal LM's token log-probs, as the attacks model them.

A classifier gives one confidence per example; a language model gives one log-prob per token.
Each attack here needs one number per text, chosen as follows (larger = more member-like):

- `logit_confidence` (LiRA): the mean over tokens of the logit-scaled token probability,
  log p_t - log(1 - p_t). LiRA logit-scales the true-class confidence so that its distribution
  over training runs is close to Gaussian (Carlini et al. 2022, Sec. IV-C; reference code
  tensorflow/privacy research/mi_lira_2021/score.py,
  commit 3d499e69ba8413d5e857ad27a9fbe7a8cf34a8b0: log p_true - log sum_{other} p); a token is
  a next-token classification, so each token is scaled, then the text averages them (as the
  reference code averages over augmentations).
- `sequence_probability` (RMIA): exp(mean token log-prob), the per-token geometric-mean
  probability; it is privacy meter's signal for causal LMs (privacytrustlab/ml_privacy_meter
  get_signals.py `get_softmax`, commit 0b8cb7aa0fa136566f244b8e701d435d484c58f8).
- `mean_logprob` (reference calibration): the mean token log-prob, i.e. minus the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

#: token probabilities are capped at 1 - 1e-12 before logit scaling: log-probs stored as float32
#: round p > 1 - 6e-8 to exactly 1, whose logit is infinite
_MAX_LOGPROB = float(np.log1p(-1e-12))


def _lp(logprobs: np.ndarray) -> np.ndarray:
    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.ndim != 1 or lp.size == 0 or not np.all(np.isfinite(lp)) or np.any(lp > 1e-6):
        raise ValueError("need a non-empty 1-D array of finite token log-probs <= 0")
    return np.minimum(lp, _MAX_LOGPROB)


def mean_logprob(logprobs: np.ndarray) -> float:
    """Mean token log-prob (= -loss)."""
    return float(np.asarray(logprobs, dtype=np.float64).mean())


def logit_confidence(logprobs: np.ndarray) -> float:
    """Mean over tokens of log(p_t / (1 - p_t)), computed stably from log p_t."""
    lp = _lp(logprobs)
    return float(np.mean(lp - np.log(-np.expm1(lp))))


def sequence_probability(logprobs: np.ndarray) -> float:
    """exp(mean token log-prob): the geometric-mean token probability in (0, 1]."""
    return float(np.exp(_lp(logprobs).mean()))


STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "mean_logprob": mean_logprob,
    "logit_confidence": logit_confidence,
    "sequence_probability": sequence_probability,
}


def statistic_vector(name: str, per_text: Sequence[np.ndarray]) -> np.ndarray:
    """One statistic for each text's token log-probs."""
    fn = STATISTICS[name]
    return np.array([fn(lp) for lp in per_text], dtype=np.float64)


def statistic_matrix(name: str, per_model: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """(models, texts) matrix of one statistic."""
    return np.array([statistic_vector(name, texts) for texts in per_model], dtype=np.float64)
