"""Reference-model calibration ("difficulty calibration"): the target's statistic minus its
average under reference models that did not train on the text.

Watson, Guo, Cormode, Sablayrolles, "On the Importance of Difficulty Calibration in Membership
Inference Attacks" (ICLR 2022); the same offset score as tensorflow/privacy's
`compute_score_offset(option="out")` (advanced_mia.py, commit
3f6d0acdef14afdb21b39426f6da36b6e1b34fff, which takes medians; means here). With one reference
model that never saw the pool this is the harness's `ref_ratio` score (mean log-prob difference =
log ppl_ref - log ppl_target). A text no reference left out is compared with an estimate of its
OUT mean (`harness.mi.estimates.class_means`). Larger = more member-like; an estimate.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from harness.mi.estimates import check_shapes, class_means
from harness.mi.lira import AttackOutput


def reference_calibration(target: np.ndarray, stats: np.ndarray, keep: np.ndarray,
                          use: Literal["out", "all"] = "out") -> AttackOutput:
    """target(x) - mean of the references' statistic on x (the OUT ones, or all of them)."""
    s, k = check_shapes(stats, keep)
    t = np.asarray(target, dtype=np.float64)
    if t.shape != (s.shape[1],) or not np.all(np.isfinite(t)):
        raise ValueError(f"target statistics must be {s.shape[1]} finite values, got {t.shape}")
    if use == "all":
        return AttackOutput(t - s.mean(axis=0), {"references": int(s.shape[0]), "use": "all"})
    if use != "out":
        raise ValueError(f"use must be 'out' or 'all', got {use!r}")
    out = class_means(s, k)[1]
    if out.rule == "absent":
        raise ValueError("every reference model trained on every scored text; none is OUT")
    details = {"references": int(s.shape[0]), "use": "out",
               "out_per_text": [int(out.counts.min()), int(out.counts.max())],
               "texts_without_out": out.imputed, "imputation": out.rule}
    return AttackOutput(t - out.mean, details)
