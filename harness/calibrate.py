"""Null calibration: many audits of canary sets the model never saw; rejection rate vs alpha.

Design: draw one large pool of items from the generator with a recorded seed, score it
ONCE through the one scoring path, then cut the pool into disjoint groups of K + M items;
each group is one null audit (first K items play the canaries, the rest the
counterfactuals; for set-mean, K marks of the user then M out-world users of K marks).
Why this is valid: pool items are i.i.d. draws from P (distinct, i.e. sampled without
replacement, which matches how an audit draws), and the model never saw any of them, so
every group is distributed exactly like a real null audit's items; disjoint groups share
no item, so the audits are independent (up to the no-duplicate constraint, which for
word canaries binds with probability ~n^2/|A|^L, negligible) and the number of rejections
is Binomial(n_audits, true level). Scoring is per item (batch-independent backends), so
scoring once instead of once per audit changes nothing but the cost.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from canaries.drbg import HashDRBG, derive_seed
from canaries.generators import GeneratorSpec, draw_canaries
from harness.backends.base import Backend
from harness.figures import fig_png
from harness.scoring import ScoringRequest, score_texts
from harness.stats import run_statistic
from harness.stats.plan import STATISTICS as PLAN_STATISTICS
from harness.stats.plan import counterfactuals_needed
from harness.stats.tails import binomial_tail, rank_sum_tail, uniform_sum_tail

STATISTICS = tuple(PLAN_STATISTICS)


@dataclass(frozen=True)
class CalibrationConfig:
    """One calibration run: how many null audits of which shape, scored how."""

    audits: int = 1000
    k: int = 4
    m: int = 16  # counterfactuals per audit; for set-mean, out-world users per audit
    statistic: str = "rank-sum"
    score: str = "loss"
    alphas: tuple[float, ...] = (0.001, 0.01, 0.05, 0.1)
    confidence: float = 0.99
    seed: str = "0"

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {self.statistic!r}")
        if self.audits < 1 or self.k < 1 or self.m < 1:
            raise ValueError("audits, k and m must all be >= 1")
        if self.statistic == "rank" and self.k != 1:
            raise ValueError("statistic 'rank' is for one canary per audit (k=1)")
        if not all(0 < a < 1 for a in self.alphas) or not 0 < self.confidence < 1:
            raise ValueError("alphas and confidence must lie in (0, 1)")

    @property
    def items_per_audit(self) -> int:
        return self.k + counterfactuals_needed(self.statistic, self.k, self.m)


@dataclass(frozen=True)
class RejectionRow:
    """Empirical rejection rate at one alpha, its Clopper-Pearson interval, and the exact level."""

    alpha: float
    rejections: int
    audits: int
    rate: float
    ci_low: float
    ci_high: float
    attainable_level: float  # P(p <= alpha) under H0 for continuous scores: <= alpha
    consistent: bool  # attainable level (hence alpha-validity) inside the interval


@dataclass(frozen=True)
class CalibrationResult:
    config: CalibrationConfig
    model: str
    fingerprint: dict[str, Any]
    generator: dict[str, Any]
    pool_seed: str
    pvalues: tuple[float, ...]
    rows: tuple[RejectionRow, ...]
    seconds: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pvalues"] = list(self.pvalues)
        return d


def attainable_level(statistic: str, k: int, m: int, alpha: float) -> float:
    """Exact H0 probability that the test rejects at alpha, with untied (continuous) scores:
    the largest p-value the test can print that is still <= alpha (p is the exact tail)."""
    if statistic in ("rank", "set-mean"):
        return math.floor(alpha * (m + 1) + 1e-9) / (m + 1)
    if statistic == "rank-first-count":  # p(x) = P(Bin(K, 1/(M+1)) >= x), falling in x
        return max((p for x in range(k + 1) if (p := binomial_tail(x, k, m + 1).p) <= alpha),
                   default=0.0)
    if statistic == "rank-sum":
        lo, hi, tail = k * (k + 1) // 2, k * (2 * (k + m) - k + 1) // 2, rank_sum_tail
        args = (k, k + m)
    else:  # uniform-rank-sum: K independent ranks on {1..M+1}
        lo, hi, tail, args = k, k * (m + 1), uniform_sum_tail, (k, m + 1)
    while lo < hi:  # p(t) rises with t: the last t with p(t) <= alpha, by bisection
        mid = (lo + hi + 1) // 2
        if tail(mid, *args).p <= alpha:
            lo = mid
        else:
            hi = mid - 1
    p = tail(lo, *args).p
    return p if p <= alpha else 0.0


def clopper_pearson(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Exact two-sided binomial interval (scipy's binomtest, method='exact')."""
    from scipy.stats import binomtest

    ci = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def draw_pool(spec: GeneratorSpec, n: int, seed: bytes, progress: bool = False) -> list[str]:
    """n distinct generator draws from a recorded seed (the model must never have seen them)."""
    return [
        c.text
        for c in draw_canaries(spec, HashDRBG(seed, "calibration-pool"), n, progress=progress)
    ]


def null_pvalues(scores: np.ndarray, config: CalibrationConfig) -> np.ndarray:
    """Apply the harness's own test to each disjoint group of the scored pool."""
    per = config.items_per_audit
    if scores.size < per * config.audits:
        raise ValueError(
            f"pool of {scores.size} scores is too small for {config.audits} audits of {per}"
        )
    groups = scores[: per * config.audits].reshape(config.audits, per)
    k = config.k
    return np.array([run_statistic(config.statistic, g[:k], g[k:]).pvalue for g in groups])


def rejection_rows(pvalues: np.ndarray, config: CalibrationConfig) -> tuple[RejectionRow, ...]:
    rows = []
    n = int(pvalues.size)
    for a in config.alphas:
        r = int(np.count_nonzero(pvalues <= a))
        lo, hi = clopper_pearson(r, n, config.confidence)
        level = float(attainable_level(config.statistic, config.k, config.m, a))
        rows.append(RejectionRow(a, r, n, r / n, lo, hi, level, bool(lo <= level <= hi)))
    return tuple(rows)


@dataclass(frozen=True)
class ScoredPool:
    """One pool of generator draws scored once; any number of null-audit groupings reuse it."""

    scores: np.ndarray
    seed: str
    model: str
    fingerprint: dict[str, Any]
    generator: dict[str, Any]
    seconds: dict[str, float]


def score_pool(
    backend: Backend,
    model_spec: str,
    spec: GeneratorSpec,
    n: int,
    seed_label: str,
    score: str = "loss",
    progress: bool = False,
) -> ScoredPool:
    """Draw n items with a recorded seed and score them through the one scoring path."""
    import time

    seed = derive_seed("tdp-calibration-pool-v1", seed_label)
    t0 = time.time()
    texts = draw_pool(spec, n, seed, progress)
    t1 = time.time()
    rows = score_texts(texts, backend, ScoringRequest((score,), {}), seed)
    return ScoredPool(
        scores=np.array([r[score] for r in rows]),
        seed=seed.hex(),
        model=model_spec,
        fingerprint=backend.fingerprint().to_dict(),
        generator=spec.to_dict(),
        seconds={"draw": t1 - t0, "score": time.time() - t1, "items": float(n)},
    )


def calibrate_pool(pool: ScoredPool, config: CalibrationConfig) -> CalibrationResult:
    """Cut the scored pool into config.audits disjoint null audits and tabulate rejections."""
    from harness.provenance import provenance

    pvalues = null_pvalues(pool.scores, config)
    return CalibrationResult(
        config=config,
        model=pool.model,
        fingerprint=pool.fingerprint,
        generator=pool.generator,
        pool_seed=pool.seed,
        pvalues=tuple(float(p) for p in pvalues),
        rows=rejection_rows(pvalues, config),
        seconds=pool.seconds,
        provenance=provenance(),
    )


def run_calibration(
    backend: Backend,
    model_spec: str,
    spec: GeneratorSpec,
    config: CalibrationConfig,
    progress: bool = False,
) -> CalibrationResult:
    """Draw, score once, split into disjoint null audits, and tabulate rejection rates."""
    n = config.items_per_audit * config.audits
    pool = score_pool(backend, model_spec, spec, n, config.seed, config.score, progress)
    return calibrate_pool(pool, config)


def qq_plot_png(pvalues: np.ndarray, title: str) -> bytes:
    """Sorted null p-values against uniform quantiles (log-log), with the y = x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = np.sort(np.asarray(pvalues))
    q = (np.arange(1, p.size + 1)) / (p.size + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), dpi=110)
    for ax, log in zip(axes, (False, True), strict=True):
        ax.plot(q, p, ".", ms=2, color="#1864ab", label="null audits")
        ax.plot([q[0], 1], [q[0], 1], "-", color="#c92a2a", lw=1, label="uniform (y = x)")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel("uniform quantile")
        ax.set_ylabel("sorted p-value")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=8)
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    fig.tight_layout()
    return fig_png(fig)


def table_markdown(result: CalibrationResult) -> str:
    c = result.config
    conf = f"{100 * c.confidence:g}%"
    lines = [
        f"| alpha | rejections / audits | empirical rate | {conf} Clopper-Pearson | exact level P0(p<=alpha) | level in CI |",
        "|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        lines.append(
            f"| {r.alpha:g} | {r.rejections} / {r.audits} | {r.rate:.4f} | [{r.ci_low:.4f}, {r.ci_high:.4f}] "
            f"| {r.attainable_level:.4f} | {'yes' if r.consistent else 'NO'} |"
        )
    return "\n".join(lines)


def write_calibration(result: CalibrationResult, out_dir: str | Path) -> Path:
    """calibration.json (every p-value), calibration.md and calibration.html (with the QQ plot)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = result.config
    title = (
        f"{c.audits} null audits, {c.statistic} on {c.score}, K={c.k}, M={c.m}, "
        f"{result.generator['kind']} L={result.generator['length']}, model {result.model}"
    )
    png = qq_plot_png(np.array(result.pvalues), title)
    (out / "qq.png").write_bytes(png)
    (out / "calibration.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    body = "\n".join(
        [
            f"# Null calibration: {title}",
            "",
            "Every audit scores items the model never saw (fresh generator draws), so every rejection is a "
            "false positive. The exact level is the probability that the test rejects under H0 with untied "
            "scores (<= alpha by construction); the empirical rate should be consistent with it.",
            "",
            table_markdown(result),
            "",
            f"Pool: {int(result.seconds.get('items', 0)):,} items drawn with seed `{result.pool_seed}`, scored once "
            f"({result.seconds.get('score', 0):.0f} s), cut into {c.audits} disjoint audits of "
            f"{c.items_per_audit} items.",
            "",
            "![QQ plot](qq.png)",
            "",
        ]
    )
    (out / "calibration.md").write_text(body)
    import html

    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    (out / "calibration.html").write_text(
        "<!doctype html><meta charset=utf-8><title>tdp calibration</title>"
        "<style>body{font:15px system-ui;max-width:980px;margin:2em auto}td,th{border:1px solid #ccc;"
        "padding:.2em .5em}table{border-collapse:collapse}</style>"
        f"<h1>Null calibration</h1><p>{html.escape(title)}</p><pre>{html.escape(table_markdown(result))}</pre>"
        f"<img alt='p-value QQ plot' src='{uri}'>\n"
    )
    return out


def default_null_model(cache_dir: str | Path, progress: bool = True) -> str:
    """The demo-sized tiny model trained on clean stdlib docstrings (no canaries), cached.

    It never saw any generator draw, so every audit against it is a null audit.
    """
    from harness.demo import DemoConfig
    from harness.tiny import tiny_model

    cfg = DemoConfig()
    out = tiny_model(
        cache_dir, cfg.corpus_bytes, cfg.vocab_size, cfg.train, progress=progress
    )
    return f"hf:{out}"
