"""Null calibration: many audits of a model on canaries it never saw; rejection rate vs alpha.

Design (one scoring pass): draw a large pool of distinct items from the generator with a fresh
seed, AFTER the model was trained, score the pool once, then cut it in draw order into disjoint
chunks of K + M items; chunk j is null audit j (first K items = canaries, the rest =
counterfactuals). This is valid because the pool items are i.i.d. draws from the generator
(conditioned on distinctness, which keeps them exchangeable) and independent of the model, so
each chunk is distributed exactly as a fresh null audit. Disjoint chunks share no item, so the
audits are independent up to the distinctness constraint (collision probability of two
7776^L-valued draws is negligible), which is what the binomial intervals on the rejection
count assume. Scoring once costs one model pass per item instead of one per audit per item.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import beta, binom

from canaries.drbg import HashDRBG
from canaries.generators import GeneratorSpec, draw_canaries, words_spec
from harness.stats import rank_sum_cdf_exact, run_statistic, uniform_sum_cdf

ALPHAS = (0.001, 0.01, 0.05, 0.1)
STATS = ("rank", "rank-sum", "uniform-rank-sum", "rank-first-count", "set-mean", "set-mean-sets")


@dataclass(frozen=True)
class CalibrationConfig:
    audits: int = 1000
    k: int = 4
    m: int = 20  # counterfactual items per audit; must be a multiple of k
    length: int = 10
    score: str = "loss"
    alphas: tuple[float, ...] = ALPHAS
    statistics: tuple[str, ...] = STATS


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion."""
    a = 1 - level
    lo = 0.0 if x == 0 else float(beta.ppf(a / 2, x, n - x + 1))
    hi = 1.0 if x == n else float(beta.ppf(1 - a / 2, x + 1, n - x))
    return lo, hi


def exact_size(statistic: str, alpha: float, k: int, m: int) -> float:
    """P_H0(p <= alpha) for continuous scores: the attained level of the discrete test."""
    if statistic == "rank":
        return math.floor(alpha * (m + 1)) / (m + 1)
    if statistic == "set-mean-sets":
        s = m // k
        return math.floor(alpha * (s + 1)) / (s + 1)
    if statistic == "set-mean":
        c = math.comb(k + m, k)
        return math.floor(alpha * c) / c
    if statistic == "rank-sum":
        vals = [
            rank_sum_cdf_exact(t, k, k + m)
            for t in range(k * (k + 1) // 2, k * (2 * (k + m) - k + 1) // 2 + 1)
        ]
    elif statistic == "uniform-rank-sum":
        vals = [uniform_sum_cdf(t, [m // k + 1] * k) for t in range(k, k * (m // k + 1) + 1)]
    elif statistic == "rank-first-count":
        vals = [float(binom.sf(j - 1, k, 1 / (m // k + 1))) for j in range(1, k + 1)]
    else:
        raise ValueError(f"no exact size for {statistic!r}")
    # the float round-up in the cdf must not push an attainable level over alpha
    ok = [v / (1 + 1e-9) for v in vals if v / (1 + 1e-9) <= alpha * (1 + 1e-12)]
    return max(ok, default=0.0)


def draw_pool(spec: GeneratorSpec, n: int, seed: bytes) -> list[str]:
    return [c.text for c in draw_canaries(spec, HashDRBG(seed, "calibration-pool"), n)]


def null_pvalues(scores: np.ndarray, cfg: CalibrationConfig) -> dict[str, np.ndarray]:
    """p-values of each statistic on each disjoint chunk of K + M scored pool items."""
    per = cfg.k + cfg.m
    n = scores.size // per
    out: dict[str, list[float]] = {s: [] for s in cfg.statistics}
    for j in range(n):
        chunk = scores[j * per : (j + 1) * per]
        c, z = chunk[: cfg.k], chunk[cfg.k :]
        for s in cfg.statistics:
            out[s].append(run_statistic(s, c[:1] if s == "rank" else c, z).pvalue)
    return {s: np.asarray(v) for s, v in out.items()}


def summarise(pvals: dict[str, np.ndarray], cfg: CalibrationConfig) -> list[dict[str, Any]]:
    """Per statistic and alpha: rejections, rate, 95% CP interval, exact size, 99% null interval."""
    rows = []
    for s, p in pvals.items():
        n = p.size
        for a in cfg.alphas:
            x = int(np.count_nonzero(p <= a))
            size = exact_size(s, a, cfg.k, cfg.m)
            lo99, hi99 = (
                (binom.ppf(0.005, n, size), binom.ppf(0.995, n, size)) if size > 0 else (0, 0)
            )
            rows.append(
                {
                    "statistic": s,
                    "alpha": a,
                    "audits": n,
                    "rejections": x,
                    "rate": x / n,
                    "cp95": clopper_pearson(x, n, 0.95),
                    "exact_size": size,
                    "null99_count": (int(lo99), int(hi99)),
                    "inside_null99": bool(lo99 <= x <= hi99),
                    "rate_le_alpha_ok": bool(clopper_pearson(x, n, 0.99)[0] <= a),
                }
            )
    return rows


def qq_plot_png(pvals: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    for s, p in pvals.items():
        q = np.sort(p)
        u = (np.arange(1, q.size + 1)) / (q.size + 1)
        ax.plot(u, q, ".", ms=2, label=s)
    ax.plot([1e-4, 1], [1e-4, 1], "k--", lw=0.8, label="uniform (exact test)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("uniform quantile")
    ax.set_ylabel("observed null p-value")
    ax.set_title("null p-values: on/above the diagonal = valid")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "| statistic | alpha | audits | rejections | rate | 95% CP interval | exact size | "
        "99% null count interval | inside |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['statistic']} | {r['alpha']} | {r['audits']} | {r['rejections']} | {r['rate']:.4f} | "
        f"[{r['cp95'][0]:.4f}, {r['cp95'][1]:.4f}] | {r['exact_size']:.4f} | "
        f"[{r['null99_count'][0]}, {r['null99_count'][1]}] | {'yes' if r['inside_null99'] else 'NO'} |\n"
        for r in rows
    )
    return head + body


def run_calibration(
    backend: Any,
    model_spec: str,
    cfg: CalibrationConfig,
    out_dir: str | Path,
    seed: bytes | None = None,
    spec: GeneratorSpec | None = None,
) -> dict[str, Any]:
    """Draw, score once, partition, test; write calibration.{json,md} and qq.png to out_dir."""
    from harness.scoring import ScoringRequest, score_texts

    if cfg.m % cfg.k:
        raise ValueError(f"M={cfg.m} must be a multiple of K={cfg.k} (separate pools / sets of K)")
    seed = seed if seed is not None else secrets.token_bytes(32)
    spec = spec or words_spec(cfg.length)
    texts = draw_pool(spec, cfg.audits * (cfg.k + cfg.m), seed)
    rows_scores = score_texts(texts, backend, ScoringRequest((cfg.score,), {}), seed)
    scores = np.array([r[cfg.score] for r in rows_scores])
    pvals = null_pvalues(scores, cfg)
    rows = summarise(pvals, cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    qq_plot_png(pvals, out / "qq.png")
    result = {
        "model": model_spec,
        "fingerprint": backend.fingerprint().to_dict(),
        "config": asdict(cfg),
        "generator": spec.to_dict(),
        "pool_seed": seed.hex(),
        "pool_size": len(texts),
        "rows": rows,
        "pvalues": {s: p.tolist() for s, p in pvals.items()},
    }
    (out / "calibration.json").write_text(json.dumps(result) + "\n")
    md = (
        f"# Null calibration: {model_spec}\n\n{cfg.audits} null audits, K={cfg.k} canaries and "
        f"M={cfg.m} counterfactuals each (words, length {cfg.length}), score `{cfg.score}`; one pool "
        f"of {len(texts)} fresh draws scored once and cut into disjoint audits (see harness/calibrate.py"
        " for why this is valid).\n\nA valid test rejects at rate <= alpha: the count should fall in "
        "the 99% interval of Binomial(audits, exact size), where the exact size is the attained level "
        "of the discrete test (<= alpha).\n\n" + markdown_table(rows) + "\n![QQ plot](qq.png)\n"
    )
    (out / "calibration.md").write_text(md)
    return result
