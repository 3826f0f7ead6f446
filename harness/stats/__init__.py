"""Scores and statistics: pure functions from per-token log-probs to scores, and from scores to typed test results."""

from harness.stats.metrics import (
    MIMetrics,
    exposure_estimate,
    fpr_at_full_tpr,
    mi_metrics,
    roc_auc,
    tpr_at_fpr,
)
from harness.stats.plan import (
    PER_CANARY_POOLS,
    SCORE_STATISTICS,
    STATISTICS,
    PlanViolation,
    check_primary,
    counterfactuals_needed,
    run_statistic,
)
from harness.stats.ranks import (
    exposure,
    holm,
    poisson_binomial_sf,
    pooled_ranks,
    rank_against,
    rank_first_count_test,
    rank_sum_test,
    rank_test,
    split_pools,
    uniform_rank_sum_test,
    uniform_sum_cdf,
)
from harness.stats.result import EXCHANGEABILITY, SAME_PATH, TIES, Kind, TestResult
from harness.stats.set_mean import set_mean_test
from harness.stats.tails import Tail, binomial_tail, rank_sum_tail, uniform_sum_tail

__all__ = [
    "EXCHANGEABILITY", "MIMetrics", "PER_CANARY_POOLS", "SAME_PATH", "SCORE_STATISTICS", "STATISTICS",
    "TIES", "Kind", "PlanViolation", "TestResult", "check_primary",
    "counterfactuals_needed", "exposure", "exposure_estimate", "fpr_at_full_tpr",
    "holm", "mi_metrics", "poisson_binomial_sf", "pooled_ranks", "rank_against",
    "rank_first_count_test", "rank_sum_test", "rank_test", "roc_auc",
    "run_statistic", "set_mean_test", "split_pools", "tpr_at_fpr", "uniform_rank_sum_test",
    "uniform_sum_cdf", "Tail", "binomial_tail", "rank_sum_tail", "uniform_sum_tail",
]
