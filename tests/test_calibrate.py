"""`tdp calibrate`: exact levels vs enumeration, Clopper-Pearson vs beta quantiles, null runs."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from canaries.generators import words_spec
from harness.backends.hf import HFBackend
from harness.calibrate import (
    CalibrationConfig,
    attainable_level,
    clopper_pearson,
    null_pvalues,
    rejection_rows,
    run_calibration,
    write_calibration,
)
from harness.cli import main
from tests.tiny_lm import tiny_lm_dir


@pytest.mark.parametrize("k,m", [(1, 9), (2, 8), (3, 7), (4, 16)])
def test_attainable_level_matches_enumeration(k, m):
    n = k + m
    sums = np.array([sum(s) for s in itertools.combinations(range(1, n + 1), k)])
    for a in (0.01, 0.05, 0.1, 0.3):
        # the rank-sum test rejects when P0(T <= t) <= a; enumerate that probability directly
        cdf = {t: np.mean(sums <= t) for t in np.unique(sums)}
        # the harness rounds exact rank-sum p-values up by 1e-12 relative (conservative), so a
        # p of exactly alpha is reported a hair above it and does not reject
        brute = max([c for c in cdf.values() if c * (1 + 1e-12) <= a], default=0.0)
        assert attainable_level("rank-sum", k, m, a) == pytest.approx(brute, rel=2e-9, abs=1e-12)
    assert attainable_level("rank", 1, 99, 0.05) == pytest.approx(5 / 100)
    assert attainable_level("set-mean", 3, 19, 0.01) == 0.0


@pytest.mark.parametrize("statistic,k,m", [("uniform-rank-sum", 3, 4), ("rank-first-count", 4, 3)])
def test_attainable_level_of_per_canary_pool_tests_matches_enumeration(statistic, k, m):
    ranks = np.array(list(itertools.product(range(1, m + 2), repeat=k)))  # i.i.d. uniform ranks
    if statistic == "uniform-rank-sum":
        stat, extreme = ranks.sum(axis=1), np.less_equal  # small sums are evidence
    else:
        stat, extreme = (ranks == 1).sum(axis=1), np.greater_equal  # many firsts are evidence
    pvals = {t: np.mean(extreme(stat, t)) for t in np.unique(stat)}
    for a in (0.01, 0.05, 0.1, 0.3):
        brute = max([p for p in pvals.values() if p * (1 + 2e-9) <= a], default=0.0)
        assert attainable_level(statistic, k, m, a) == pytest.approx(brute, rel=2e-9, abs=1e-12)


def test_clopper_pearson_is_the_beta_quantile_interval():
    lo, hi = clopper_pearson(7, 500, 0.99)
    assert lo == pytest.approx(sps.beta.ppf(0.005, 7, 494), rel=1e-6)
    assert hi == pytest.approx(sps.beta.ppf(0.995, 8, 493), rel=1e-6)
    assert clopper_pearson(0, 100, 0.95)[0] == 0.0


@pytest.mark.parametrize(
    "statistic,k,m",
    [("rank", 1, 19), ("rank-sum", 3, 17), ("set-mean", 2, 19), ("uniform-rank-sum", 3, 6),
     ("rank-first-count", 3, 2)],
)
def test_synthetic_null_rejection_rates_are_consistent(statistic, k, m):
    config = CalibrationConfig(audits=3000, k=k, m=m, statistic=statistic, alphas=(0.05, 0.1))
    scores = np.random.default_rng(1).normal(size=config.items_per_audit * config.audits)
    rows = rejection_rows(null_pvalues(scores, config), config)
    for r in rows:
        assert r.attainable_level <= r.alpha
        assert r.ci_low <= r.attainable_level <= r.ci_high  # fails with probability ~1% per row


def test_a_broken_test_is_caught():
    """Scores where canaries are systematically favoured must push the rate above alpha."""
    config = CalibrationConfig(audits=2000, k=2, m=18, alphas=(0.05,))
    x = np.random.default_rng(2).normal(size=(config.audits, 20))
    x[:, :2] += 1.0  # not a null: the 'canaries' score higher
    rows = rejection_rows(null_pvalues(x.ravel(), config), config)
    assert not rows[0].consistent and rows[0].ci_low > 0.05


def test_calibration_on_a_real_tiny_model(tmp_path_factory, tmp_path):
    model = tiny_lm_dir(tmp_path_factory)
    backend = HFBackend(str(model), device="cpu", dtype="float32")
    config = CalibrationConfig(audits=300, k=2, m=8, alphas=(0.05, 0.1))
    result = run_calibration(backend, f"hf:{model}", words_spec(4), config)
    assert len(result.pvalues) == 300 and result.seconds["items"] == 3000
    assert min(result.pvalues) >= 1 / 45  # C(10, 2) subsets
    for r in result.rows:
        assert r.ci_low <= r.attainable_level <= r.ci_high
    write_calibration(result, tmp_path / "rank-sum")  # every field must serialise
    back = json.loads((tmp_path / "rank-sum" / "calibration.json").read_text())
    assert back["rows"][0]["consistent"] is True and len(back["pvalues"]) == 300
    runner = CliRunner()
    out = tmp_path / "cal"
    res = runner.invoke(
        main,
        [
            "calibrate",
            "--model",
            f"hf:{model}",
            "-n",
            "200",
            "-k",
            "1",
            "-m",
            "19",
            "--statistic",
            "rank",
            "-l",
            "4",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    d = json.loads((out / "calibration.json").read_text())
    assert len(d["pvalues"]) == 200 and d["config"]["statistic"] == "rank"
    assert (out / "qq.png").stat().st_size > 1000 and "QQ" in (out / "calibration.md").read_text()
    bad = runner.invoke(
        main, ["calibrate", "--model", f"hf:{model}", "--statistic", "rank", "-k", "3"]
    )
    assert bad.exit_code != 0 and "k=1" in bad.output
