"""LiRA, the likelihood-ratio attack (Carlini, Chien, Nasr, Song, Terzis, Tramèr, "Membership
Inference Attacks From First Principles", IEEE S&P 2022, arXiv:2112.03570).

For each text x the shadow models give samples of a per-text statistic phi under models that
trained on x (IN) and models that did not (OUT). LiRA fits a Gaussian to each and scores the
target model's phi(x):

- online:  log N(phi; mu_in(x), s_in^2) - log N(phi; mu_out(x), s_out^2), the log likelihood
  ratio (Algorithm 1; the reference code scores the same difference, tensorflow/privacy
  research/mi_lira_2021/plot.py `generate_ours`, commit 3d499e69ba8413d5e857ad27a9fbe7a8cf34a8b0).
- offline: -log Pr[Z > phi], Z ~ N(mu_out(x), s_out^2): the paper's one-sided test
  (Algorithm 1, offline), in log form so that tiny tail probabilities keep their order. The
  reference code's `generate_ours_offline` scores the two-sided log density instead; here the
  paper's direction is kept (a member should score *above* its OUT distribution).

Means are per-text means (the paper's Algorithm 1; the reference code takes medians, equal for one
or two samples). Variance: per text, or one pooled ("global", the paper's "fixed variance")
value for every text, which the paper recommends below 64 shadow models; "auto" picks global
unless every text has >= 32 IN and >= 32 OUT samples. With a global variance the online score is
(mu_in - mu_out)(2 phi - mu_in - mu_out) / (2 s^2) and the offline score is monotone in
phi - mu_out: the variance scales scores but does not reorder them.

Statistic: see `harness.mi.signals.logit_confidence`. Every score is an estimate: it assumes the
statistic is Gaussian over training runs and that the shadow models are trained like the target
(same architecture, data distribution and recipe); a mismatch costs power, not validity of the
metrics, which are measured on labelled texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.stats import norm

from harness.mi.estimates import check_shapes, class_means, class_stds, pooled_std

Variance = Literal["auto", "global", "per-text"]
#: below this many IN (and OUT) samples per text "auto" uses the global variance
PER_TEXT_MIN = 32


@dataclass(frozen=True)
class AttackOutput:
    """Scores (larger = more member-like) and what the fit found (counts, variance, imputation)."""

    scores: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)


def _variance_mode(variance: Variance, counts: tuple[np.ndarray, ...]) -> str:
    if variance not in ("auto", "global", "per-text"):
        raise ValueError(f"variance must be 'auto', 'global' or 'per-text', got {variance!r}")
    if variance != "auto":
        return variance
    return "per-text" if min(int(c.min()) for c in counts) >= PER_TEXT_MIN else "global"


def _target(target: np.ndarray, n_texts: int) -> np.ndarray:
    t = np.asarray(target, dtype=np.float64)
    if t.shape != (n_texts,) or not np.all(np.isfinite(t)):
        raise ValueError(f"target statistics must be {n_texts} finite values, got {t.shape}")
    return t


def _fit(stats: np.ndarray, keep: np.ndarray, variance: Variance, online: bool) -> dict[str, Any]:
    s, k = check_shapes(stats, keep)
    m_in, m_out = class_means(s, k)
    if m_out.rule == "absent" or (online and m_in.rule == "absent"):
        which = "OUT" if m_out.rule == "absent" else "IN"
        raise ValueError(f"no shadow model gives an {which} sample for any scored text")
    counts = (m_in.counts, m_out.counts) if online else (m_out.counts,)
    mode = _variance_mode(variance, counts)
    std = pooled_std(s, k, (m_in, m_out))
    if mode == "global":
        s_in = s_out = np.full(s.shape[1], std)
    else:
        s_in, s_out = class_stds(s, k, (m_in, m_out), std)
    return {
        "mu_in": m_in.mean, "mu_out": m_out.mean, "s_in": s_in, "s_out": s_out,
        "details": {
            "shadow_models": int(s.shape[0]),
            "variance": mode,
            "global_std": std,
            "in_samples_per_text": [int(m_in.counts.min()), int(m_in.counts.max())],
            "out_samples_per_text": [int(m_out.counts.min()), int(m_out.counts.max())],
            "texts_without_in": m_in.imputed if online else None,
            "texts_without_out": m_out.imputed,
            "imputation": {"in": m_in.rule if online else None, "out": m_out.rule},
        },
    }


def lira_online(target: np.ndarray, stats: np.ndarray, keep: np.ndarray,
                variance: Variance = "auto") -> AttackOutput:
    """Online LiRA: log-likelihood ratio of IN vs OUT Gaussians at the target's statistic."""
    fit = _fit(stats, keep, variance, online=True)
    t = _target(target, fit["mu_in"].size)
    scores = norm.logpdf(t, fit["mu_in"], fit["s_in"]) - norm.logpdf(t, fit["mu_out"], fit["s_out"])
    return AttackOutput(scores, fit["details"])


def lira_offline(target: np.ndarray, stats: np.ndarray, keep: np.ndarray,
                 variance: Variance = "auto") -> AttackOutput:
    """Offline LiRA: -log of the one-sided p-value of the target's statistic under OUT."""
    fit = _fit(stats, keep, variance, online=False)
    t = _target(target, fit["mu_out"].size)
    return AttackOutput(-norm.logsf(t, fit["mu_out"], fit["s_out"]), fit["details"])
