"""MI metrics: sklearn's ROC, the fast bootstrap path, the inequality, resolution, round trip."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from harness.stats.metrics import (
    DEFAULT_FPRS,
    MIMetrics,
    _point,
    _point_sorted,
    mi_metrics,
    mi_table,
    tpr_at_fpr,
)


def test_fast_bootstrap_path_equals_the_roc_curve_path_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = np.round(rng.normal(0.4, 1, rng.integers(1, 40)), 1)
        n = np.round(rng.normal(0.0, 1, rng.integers(1, 40)), 1)
        a, b = _point(m, n, (0.0, 0.01, 0.1, 0.5)), _point_sorted(m, n, (0.0, 0.01, 0.1, 0.5))
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], abs=1e-12), k


def test_auc_is_sklearns_and_the_fpr_inequality_is_inclusive():
    m = np.array([3.0, 2.0, 1.0, 0.5])
    n = np.array([2.0, 0.0, -1.0, -2.0])
    res = mi_metrics(m, n, fprs=(0.25, 0.2), n_bootstrap=0)
    y = np.r_[np.ones(4), np.zeros(4)]
    assert res.auc == pytest.approx(roc_auc_score(y, np.r_[m, n]))
    # threshold 2.0 flags 2 members and exactly 1 of 4 non-members: FPR 0.25 <= 0.25 counts
    assert res.tpr_at_fpr[0.25] == pytest.approx(1.0)  # threshold 0.5: FPR 1/4, TPR 4/4
    assert res.tpr_at_fpr[0.2] == pytest.approx(0.25)  # only FPR 0 allowed: threshold 3.0
    assert tpr_at_fpr(m, n, 0.25) == res.tpr_at_fpr[0.25]
    assert res.fpr_at_full_tpr == pytest.approx(0.25) and res.ci == {} and res.kind == "estimate"


def test_intervals_cover_the_estimate_and_round_trip():
    rng = np.random.default_rng(1)
    res = mi_metrics(rng.normal(0.5, 1, 150), rng.normal(0, 1, 150), n_bootstrap=300, seed=3)
    assert set(res.tpr_at_fpr) == set(DEFAULT_FPRS) and res.n_bootstrap == 300
    lo, hi = res.ci["auc"]
    assert lo < res.auc < hi and 0.5 < res.auc < 0.8
    assert MIMetrics.from_dict(res.to_dict()) == res
    again = mi_metrics(rng.normal(0.5, 1, 150), rng.normal(0, 1, 150), n_bootstrap=300, seed=3)
    assert again != res  # other data, other numbers (the seed fixes only the resampling)


def test_resolution_note_names_what_low_fprs_mean():
    res = mi_metrics([1.0, 2.0, 3.0], [0.0, 0.5, 1.5], n_bootstrap=0)
    assert "TPR at FPR <= 0.001, 0.01, 0.05 is TPR at FPR = 0" in res.resolution_note()
    wide = mi_metrics(np.arange(10.0), np.arange(2000.0), fprs=(0.01,), n_bootstrap=0)
    assert wide.resolution_note() is None


def test_mi_table_and_input_checks():
    t = mi_table({"a": ([1.0, 2.0], [0.0, 1.0]), "b": ([0.0], [1.0])}, n_bootstrap=0)
    assert t["a"].auc == pytest.approx(0.875) and t["b"].auc == 0.0
    with pytest.raises(ValueError, match="NaN"):
        mi_metrics([np.nan], [1.0])
    with pytest.raises(ValueError, match="level"):
        mi_metrics([1.0], [0.0], level=1.0)
