"""Write bench/mi_lira.py's result: README.md (tables and computed shape checks), results.json,
roc.png (log-log) and shadow_curve.png. Every figure comes from the run's own numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from canaries.files import atomic_write_bytes, atomic_write_text
from harness.mi.evaluate import markdown_table, roc_loglog_png
from harness.provenance import now, provenance

LABELS = {
    "loss": "loss (mean token log-prob, global threshold)",
    "zlib": "zlib (harness `zlib` score)",
    "min_k": "Min-K% (k = 0.2)",
    "min_k_pp": "Min-K%++ (k = 0.2)",
    "ref_ratio": "ref_ratio (1 reference model, never saw the pool)",
    "ref_calibration": "reference calibration (OUT shadow models)",
    "lira_online": "**LiRA online** (global variance)",
    "lira_offline": "**LiRA offline** (global variance)",
    "lira_online [population offset]": "**LiRA online**, population offset",
    "lira_offline [population offset]": "**LiRA offline**, population offset",
    "rmia": "**RMIA offline** (a tuned)",
    "rmia_online": "**RMIA online**",
}
FPRS = (0.001, 0.01)


def _tpr(m, x: float) -> float:
    return m.tpr_at_fpr[x]


def shape_checks(metrics: dict, curve: dict, diag: dict) -> list[str]:
    """Statements about the run's shape, each computed from its numbers."""
    lo, lf, loss = metrics["lira_online"], metrics["lira_offline"], metrics["loss"]
    pv = metrics["lira_online [per-text variance]"]
    lp = metrics["lira_online [population offset]"]
    lfp = metrics["lira_offline [population offset]"]
    spread, gap = diag["shadow_offset_range"], diag["mean_gap"]
    lo_s, hi_s = min(diag["shadow_offsets"]), max(diag["shadow_offsets"])
    targets = ", ".join(f"{v:.3f}" for v in diag["targets"].values()) + (
        f"; shadows {lo_s:.3f} to {hi_s:.3f}")
    ns = sorted(curve)
    seq = [_tpr(curve[n]["lira_online"], 0.01) for n in ns]
    best_base = max(("loss", "zlib", "min_k", "min_k_pp", "ref_ratio"),
                    key=lambda k: _tpr(metrics[k], 0.01))
    ratio = _tpr(lo, 0.01) / max(_tpr(loss, 0.01), 1e-9)
    return [
        f"LiRA online vs the loss threshold at FPR <= 1%: TPR {100 * _tpr(lo, 0.01):.2f}% vs "
        f"{100 * _tpr(loss, 0.01):.2f}% ({ratio:.1f}x); AUC {lo.auc:.3f} vs {loss.auc:.3f}.",
        f"Best single-model baseline at FPR <= 1%: {best_base} "
        f"({100 * _tpr(metrics[best_base], 0.01):.2f}%).",
        f"Online vs offline LiRA at FPR <= 0.1%: {100 * _tpr(lo, 0.001):.2f}% vs "
        f"{100 * _tpr(lf, 0.001):.2f}%; at FPR <= 1%: {100 * _tpr(lo, 0.01):.2f}% vs "
        f"{100 * _tpr(lf, 0.01):.2f}%.",
        f"Global vs per-text variance (online, {ns[-1]} shadow models): TPR at FPR <= 1% "
        f"{100 * _tpr(lo, 0.01):.2f}% vs {100 * _tpr(pv, 0.01):.2f}%.",
        f"Population offset (each model's median statistic on the population subtracted): "
        f"online AUC {lo.auc:.3f} -> {lp.auc:.3f}, TPR at FPR <= 1% {100 * _tpr(lo, 0.01):.2f}% "
        f"-> {100 * _tpr(lp, 0.01):.2f}%; offline AUC {lf.auc:.3f} -> {lfp.auc:.3f}.",
        f"Model-level shift: the shadow models' population medians of the LiRA statistic span "
        f"{spread:.3f} (targets: {targets}), against a mean IN-OUT gap per text of {gap:.3f}.",
        "LiRA online TPR at FPR <= 1% by number of shadow models: "
        + ", ".join(f"{n}: {100 * v:.2f}%" for n, v in zip(ns, seq, strict=True))
        + (" (non-decreasing)" if all(b >= a for a, b in zip(seq, seq[1:], strict=False))
           else " (not monotone)") + ".",
    ]


def curve_table(curve: dict) -> str:
    names = list(next(iter(curve.values())))
    head = "| shadow models | " + " | ".join(
        f"{n}: TPR@1% / TPR@0.1% / AUC" for n in names) + " |"
    rows = [head, "|---:|" + "---|" * len(names)]
    for n in sorted(curve):
        cells = [f"{100 * _tpr(curve[n][a], 0.01):.2f}% / {100 * _tpr(curve[n][a], 0.001):.2f}% "
                 f"/ {curve[n][a].auc:.3f}" for a in names]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def curve_png(curve: dict) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(curve)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    for ax, x in zip(axes, (0.01, 0.001), strict=True):
        for name in curve[ns[0]]:
            v = np.array([_tpr(curve[n][name], x) for n in ns])
            ci = np.array([curve[n][name].ci.get(f"tpr_at_fpr<={x}", (np.nan, np.nan))
                           for n in ns])
            ax.errorbar(ns, 100 * v, yerr=100 * np.abs(ci.T - v), marker="o", capsize=3,
                        label=name, lw=1.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("shadow models")
        ax.set_ylabel(f"TPR (%) at FPR <= {100 * x:g}%")
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def readme(result: dict, command: str) -> str:
    cfg, sizes, shadow = result["config"], result["sizes"], result["shadow"]
    tr = cfg["train"]
    params = shadow.models[0].trained["parameters"]
    members = int(result["is_member"].sum())
    return "\n".join([
        "# Controlled MI benchmark: LiRA and RMIA against tiny LMs trained here (CPU)",
        "",
        f"Generated {now()} by `{command}` (2 shared CPU cores, `OMP_NUM_THREADS=1 nice -n 10`): "
        f"training the {len(shadow.models) + 3} models took {result['training_seconds'] / 60:.1f} "
        f"min (as recorded when each was trained); this run, which reuses finished models and "
        f"cached scores, {result['seconds'] / 60:.1f} min. Every number is an **estimate** "
        "measured on labelled texts; none is a false-positive bound.",
        "",
        "## Setup (ground truth by construction)",
        f"- Corpus: paragraphs (120-500 characters) of the running Python's stdlib docstrings, "
        f"split by a seeded shuffle into a **pool of {sizes['pool']}** texts and a **population "
        f"of {sizes['population']}** (every other text; no shadow or target model trains on "
        "them; RMIA's z).",
        f"- **{len(shadow.models)} shadow models** on complementary random halves of the pool "
        f"(`tdp shadow train`'s code; every text IN for {len(shadow.models) // 2} and OUT for "
        f"{len(shadow.models) // 2}); shadow set digest `{shadow.digest()}`.",
        "- **2 target models** on a complementary pair of halves drawn with another seed: every "
        f"pool text is a member of one target and a non-member of the other. Scores of both "
        f"targets are pooled: {members} member and {result['is_member'].size - members} "
        "non-member instances (each text once in each class; bootstrap CIs resample the two "
        "classes independently, which ignores that pairing).",
        f"- 1 reference model for `ref_ratio`, trained on the population ({sizes['population']} "
        "texts, disjoint from the pool).",
        f"- Every model: GPT-2, {tr['n_layer']} layer, {tr['n_embd']} dims, {params:,} "
        f"parameters, vocabulary {cfg['vocab_size']} (one BPE tokenizer, trained on pool + "
        f"population), block {tr['block_size']}, {tr['epochs']} epochs, batch "
        f"{tr['batch_size']}, lr {tr['lr']}; about "
        f"{shadow.models[0].trained['tokens_per_epoch']:,} training tokens per model.",
        "",
        f"## Attacks with {len(shadow.models)} shadow models, and the baselines",
        "TPR at FPR <= x is the largest TPR over thresholds whose FPR is at most x; 95% "
        f"percentile-bootstrap CIs ({cfg['bootstrap']} resamples) in brackets.",
        "",
        markdown_table(result["metrics"], FPRS, LABELS),
        "",
        "## LiRA and friends as the number of shadow models grows",
        f"First n shadow models of the set (n = 1 has no IN or no OUT sample for half the texts: "
        f"they get the column mean, as tensorflow/privacy does; RMIA at n = 1 uses a = 1). "
        f"Bootstrap {cfg['curve_bootstrap']} resamples; CIs in results.json and the plot.",
        "",
        curve_table(result["curve"]),
        "",
        "## Shape, computed from the numbers above",
        *[f"- {s}" for s in shape_checks(result["metrics"], result["curve"],
                                          result["diagnostics"])],
        "",
        "Plots: `roc.png` (log-log ROC), `shadow_curve.png`. Comparison with the published LiRA "
        "results: `COMPARISON.md`.",
        "",
    ])


def to_json(result: dict, command: str) -> str:
    shadow = result["shadow"]
    doc: dict[str, Any] = {
        "schema": 1, "kind": "estimate", "created": now(), "seconds": result["seconds"],
        "training_seconds": result["training_seconds"],
        "config": result["config"], "sizes": result["sizes"],
        "shadow_set": {"digest": shadow.digest(), "models": [
            {"name": m.name, "identity": m.identity, "trained": m.trained} for m in shadow.models]},
        "metrics": {k: m.to_dict() for k, m in result["metrics"].items()},
        "curve": {str(n): {k: m.to_dict() for k, m in c.items()}
                  for n, c in result["curve"].items()},
        "attack_details": result["details"], "diagnostics": result["diagnostics"],
        "provenance": provenance(command.split()),
    }
    return json.dumps(doc, indent=1, default=float) + "\n"


def write_outputs(result: dict, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    y, s = result["is_member"], result["scores"]
    shown = ("loss", "min_k_pp", "ref_ratio", "ref_calibration", "lira_online", "lira_offline",
             "lira_online [population offset]", "rmia", "rmia_online")
    curves = {k: (s[k][y], s[k][~y]) for k in shown}
    atomic_write_bytes(out / "roc.png", roc_loglog_png(curves, "2 targets x pool, 16 shadows"))
    atomic_write_bytes(out / "shadow_curve.png", curve_png(result["curve"]))
    atomic_write_text(out / "results.json", to_json(result, command))
    atomic_write_text(out / "README.md", readme(result, command))
