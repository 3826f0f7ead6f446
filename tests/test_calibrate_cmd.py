"""`tdp calibrate`: exact sizes, Clopper-Pearson, and a small real null run with a tiny model."""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner
from scipy.stats import binomtest

from harness.calibrate import clopper_pearson, exact_size
from harness.cli import main
from harness.stats import rank_sum_cdf_exact


def test_clopper_pearson_matches_scipy():
    for x, n in [(0, 50), (3, 50), (50, 50), (17, 1000)]:
        ci = binomtest(x, n).proportion_ci(0.95, method="exact")
        assert clopper_pearson(x, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_exact_size_rank_sum_by_enumeration():
    k, n = 3, 9
    sums = sorted(sum(s) for s in itertools.combinations(range(1, n + 1), k))
    for alpha in (0.01, 0.05, 0.2):
        brute = max(
            (
                sum(x <= t for x in sums) / len(sums)
                for t in set(sums)
                if sum(x <= t for x in sums) / len(sums) <= alpha
            ),
            default=0.0,
        )
        assert exact_size("rank-sum", alpha, k, n - k) == pytest.approx(brute, rel=1e-8)
        assert rank_sum_cdf_exact(0, k, n) == 0.0


def test_calibrate_cli_small_null_run(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv(
        "TDP_CACHE", str(tmp_path_factory.getbasetemp())
    )  # tiny model shared across tests
    out = tmp_path / "cal"
    res = CliRunner().invoke(
        main, ["calibrate", "--audits", "100", "--seed", "11" * 32, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    cal = json.loads((out / "calibration.json").read_text())
    assert (out / "qq.png").stat().st_size > 1000
    assert len(cal["pvalues"]["rank-sum"]) == 100
    for r in cal["rows"]:
        assert r["inside_null99"], (
            r
        )  # a valid test's count lies in Binomial(n, exact size)'s 99% range
    bad = CliRunner().invoke(main, ["calibrate", "--k", "3", "--m", "20", "--out", str(out)])
    assert bad.exit_code != 0 and "multiple of --k" in bad.output
