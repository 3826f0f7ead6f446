"""Per-text IN/OUT estimates from shadow models: class means (with a rule for a missing class)
and the pooled ("global") standard deviation.

`stats[i, j]` is a per-text statistic of text j under shadow model i; `keep[i, j]` says model i
trained on text j. A text's IN class is the models that trained on it, its OUT class the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassMeans:
    """Per-text mean of one class, and how the texts without a sample of it were filled in."""

    mean: np.ndarray  # (T,)
    counts: np.ndarray  # (T,) samples per text
    imputed: int  # texts with no sample of this class
    rule: str  # "none", "offset", "column-mean", or "absent" (no sample for any text: NaN)


def check_shapes(stats: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated float (N, T) statistics and a boolean mask of the same shape."""
    s = np.asarray(stats, dtype=np.float64)
    k = np.asarray(keep, dtype=bool)
    if s.ndim != 2 or s.shape != k.shape or s.shape[0] < 1 or s.shape[1] < 1:
        raise ValueError(f"shadow statistics {s.shape} and membership {k.shape} must be equal "
                         "(models, texts) arrays")
    if not np.all(np.isfinite(s)):
        raise ValueError("shadow statistics contain NaN or infinite values")
    return s, k


def _raw_means(s: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = mask.sum(axis=0)
    total = np.where(mask, s, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan), counts


def class_means(stats: np.ndarray, keep: np.ndarray) -> tuple[ClassMeans, ClassMeans]:
    """(IN, OUT) per-text means. A text without a sample of one class gets the other class's
    mean shifted by the average IN-OUT gap over texts that have both; if no text has both,
    the column mean of the class over all texts (tensorflow/privacy's
    `replace_nan_with_column_mean` in advanced_mia.py,
    commit 3f6d0acdef14afdb21b39426f6da36b6e1b34fff)."""
    s, k = check_shapes(stats, keep)
    m_in, c_in = _raw_means(s, k)
    m_out, c_out = _raw_means(s, ~k)
    both = (c_in > 0) & (c_out > 0)
    gap = float(np.mean(m_in[both] - m_out[both])) if both.any() else None
    return _fill(m_in, c_in, m_out, gap), _fill(m_out, c_out, m_in, None if gap is None else -gap)


def _fill(mean: np.ndarray, counts: np.ndarray, other: np.ndarray, gap: float | None) -> ClassMeans:
    missing = counts == 0
    if not missing.any():
        return ClassMeans(mean, counts, 0, "none")
    out = mean.copy()
    if gap is not None:
        out[missing] = other[missing] + gap
        return ClassMeans(out, counts, int(missing.sum()), "offset")
    if missing.all():  # e.g. IN for texts no shadow model trained on (canaries)
        return ClassMeans(out, counts, int(missing.sum()), "absent")
    out[missing] = float(np.mean(mean[~missing]))
    return ClassMeans(out, counts, int(missing.sum()), "column-mean")


def pooled_std(stats: np.ndarray, keep: np.ndarray, means: tuple[ClassMeans, ClassMeans]) -> float:
    """One standard deviation for every text and both classes: the pooled within-class spread,
    sqrt(sum of squared deviations from each text's class mean / (samples - class means)).

    Texts with one sample of a class add no degree of freedom. When no class of any text has two
    samples (e.g. two models: one IN, one OUT per text) there is no within-class spread to see;
    the std of all statistics is used instead (as the LiRA reference code's fixed variance,
    tensorflow/privacy research/mi_lira_2021/plot.py `np.std(dat_in)`, commit
    3d499e69ba8413d5e857ad27a9fbe7a8cf34a8b0). With equal variances for IN and OUT the value only
    scales LiRA's scores, so it does not change their ranking.
    """
    s, k = check_shapes(stats, keep)
    ss, dof = 0.0, 0
    for mask, cm in ((k, means[0]), (~k, means[1])):
        dev = np.where(mask, s - cm.mean[None, :], 0.0)
        ss += float((dev**2).sum())
        dof += int(mask.sum() - (cm.counts > 0).sum())
    std = float(np.sqrt(ss / dof)) if dof > 0 else float(np.std(s))
    if not std > 0:
        raise ValueError("shadow statistics do not vary; no variance can be estimated")
    return std


def class_stds(stats: np.ndarray, keep: np.ndarray, means: tuple[ClassMeans, ClassMeans],
               fallback: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-text (IN, OUT) standard deviations (ddof=0, as np.std in the reference code); texts
    with fewer than two samples of a class, or no spread in it, get `fallback`."""
    s, k = check_shapes(stats, keep)
    out = []
    for mask, cm in ((k, means[0]), (~k, means[1])):
        dev = np.where(mask, s - cm.mean[None, :], 0.0)
        std = np.sqrt((dev**2).sum(axis=0) / np.maximum(cm.counts, 1))
        out.append(np.where((cm.counts >= 2) & (std > 0), std, fallback))
    return out[0], out[1]
