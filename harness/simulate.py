"""Power analysis by controlled injection: train tiny models with canaries planted r times, audit.

Each cell (kind, length, count, repeat) draws its own canary set, injects it r times into the
stdlib-docstring corpus, trains a model from scratch with accelerate (on the CPU here; the
same code uses a CUDA device when one is visible, untested in this project),
and audits it twice: against the planted set (power) and against a
never-planted set from the same generator (null: empirical false positives). Results are kept
per cell in `out/cells/<key>.json`; a finished cell is never retrained (resumable).

Mode set-inference trains one model on a corpus where in-world users' documents carry their
marks, and reports, over many users, the exact test's rejection rates and FPR at 100% TPR.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.drbg import derive_seed
from canaries.generators import tokens_spec, words_spec
from canaries.inject import inject_texts
from harness.audit import AuditContext, run_audit
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer

SCORES = ("loss", "zlib", "min_k")


@dataclass(frozen=True)
class SimConfig:
    repeats: tuple[int, ...] = (1, 2, 4, 8, 16)
    lengths: tuple[int, ...] = (10,)
    kinds: tuple[str, ...] = ("words",)
    counts: tuple[int, ...] = (32,)
    counterfactuals: int = 500
    alpha: float = 0.01
    corpus_bytes: int = 300_000
    vocab_size: int = 2048
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)


def _say(msg: str) -> None:
    print(f"[tdp simulate] {msg}", flush=True)


def cell_key(kind: str, length: int, count: int, repeat: int) -> str:
    return f"{kind}-L{length}-K{count}-r{repeat}"


def _tokenizer(work: Path, docs: list[str], vocab: int) -> Path:
    path = work / "tokenizer"
    if not (path / "tokenizer.json").exists():
        train_tokenizer(docs, vocab).save_pretrained(path)
    return path


def _summ(audit: Any, alpha: float) -> dict[str, Any]:
    """Per score: the plan's set-level p-value, and the share of canaries whose own rank test
    (p = rank/(M+1) against the shared pool, exact per canary) is <= alpha."""
    out: dict[str, Any] = {}
    for t in audit.tests:
        c = np.array([i.scores[t.score] for i in audit.items if i.role == "canary"])
        z = np.sort(
            np.array([i.scores[t.score] for i in audit.items if i.role == "counterfactual"])
        )
        ranks = 1 + z.size - np.searchsorted(z, c, side="left")
        p_each = ranks / (z.size + 1)
        out[t.score] = {
            "set_p": t.result.pvalue,
            "set_test": t.result.name,
            "primary": t.primary,
            "per_canary_detect": float(np.mean(p_each <= alpha)),
            "min_per_canary_p": float(p_each.min()),
        }
    return out


def run_cell(
    kind: str,
    length: int,
    count: int,
    repeat: int,
    cfg: SimConfig,
    out: Path,
    docs: list[str],
    progress: bool = False,
) -> dict[str, Any]:
    from harness.backends.hf import HFBackend

    key = cell_key(kind, length, count, repeat)
    path = out / "cells" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.time()
    work = out / "work" / key
    work.mkdir(parents=True, exist_ok=True)
    tok_path = _tokenizer(out / "work", docs, cfg.vocab_size)
    spec = words_spec(length) if kind == "words" else tokens_spec(length, str(tok_path.resolve()))
    plan = Plan(
        score="loss", statistic="rank-sum", counterfactuals=cfg.counterfactuals, alpha=cfg.alpha
    )
    base = f"{cfg.seed}|{key}"
    planted, s1 = new_canary_set(spec, count, plan, derive_seed("sim-planted", base))
    fresh, s2 = new_canary_set(spec, count, plan, derive_seed("sim-fresh", base))
    save_canary_set(planted, work / "canaries.json", s1)
    save_canary_set(fresh, work / "never-planted.json", s2)
    texts, _ = inject_texts(docs, planted, repeat, derive_seed("sim-inject", base))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tok_path)
    tr = train_causal_lm(texts, tokenizer, cfg.train, work / "model", progress=progress, desc=key)
    backend = HFBackend(tr.path)
    spec_str = f"hf:{tr.path}"
    opts = {"secondary": SCORES[1:]}
    power = run_audit(
        "canary-rank",
        AuditContext(planted, str(work / "canaries.json"), backend, spec_str, progress=False),
        opts,
    )
    null = run_audit(
        "canary-rank",
        AuditContext(fresh, str(work / "never-planted.json"), backend, spec_str, progress=False),
        opts,
        role="null-control",
    )
    res = {
        "key": key,
        "kind": kind,
        "length": length,
        "count": count,
        "repeat": repeat,
        "M": cfg.counterfactuals,
        "alpha": cfg.alpha,
        "train_loss": tr.final_loss,
        "parameters": tr.parameters,
        "seconds": time.time() - t0,
        "planted": _summ(power, cfg.alpha),
        "null": _summ(null, cfg.alpha),
        "min_attainable_p": power.primary.result.min_attainable_p,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(path)
    # the model is not needed again: keep disk small (the cell JSON holds every number)
    for f in (work / "model").glob("*.safetensors"):
        f.unlink()
    return res


def run_power(cfg: SimConfig, out_dir: str | Path, progress: bool = False) -> list[dict[str, Any]]:
    out = Path(out_dir)
    docs = stdlib_docstrings(cfg.corpus_bytes)
    rows = []
    for kind in cfg.kinds:
        for length in cfg.lengths:
            for count in cfg.counts:
                for r in cfg.repeats:
                    done = (out / "cells" / f"{cell_key(kind, length, count, r)}.json").exists()
                    res = run_cell(kind, length, count, r, cfg, out, docs, progress)
                    _say(
                        f"{res['key']}: loss p = {res['planted']['loss']['set_p']:.3g}, null p = "
                        f"{res['null']['loss']['set_p']:.3g}{' (cached)' if done else ''}"
                    )
                    rows.append(res)
    write_power_report(rows, cfg, out)
    return rows


def power_table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "| cell | r | set p (loss, rank-sum) | null p | canaries detected at alpha: loss / zlib / "
        "min_k | null canaries flagged: loss / zlib / min_k |\n|---|---|---|---|---|---|\n"
    )
    body = ""
    for r in rows:
        det = " / ".join(
            f"{r['planted'][s]['per_canary_detect']:.2f}" for s in SCORES if s in r["planted"]
        )
        fp = " / ".join(
            f"{r['null'][s]['per_canary_detect']:.3f}" for s in SCORES if s in r["null"]
        )
        body += (
            f"| {r['kind']} L={r['length']} K={r['count']} | {r['repeat']} | "
            f"{r['planted']['loss']['set_p']:.3g} | {r['null']['loss']['set_p']:.3g} | {det} | {fp} |\n"
        )
    return head + body


def summary_numbers(rows: Sequence[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Empirical FPRs over all null audits/canaries and the smallest r reaching p <= 1e-6."""
    nulls_set = [r["null"][s]["set_p"] for r in rows for s in SCORES if s in r["null"]]
    per_canary = [
        (r["null"][s]["per_canary_detect"], r["count"])
        for r in rows
        for s in SCORES
        if s in r["null"]
    ]
    flagged = sum(f * k for f, k in per_canary)
    total = sum(k for _, k in per_canary)
    smallest: dict[str, int | None] = {}
    for r in sorted(rows, key=lambda x: x["repeat"]):
        key = f"{r['kind']} L={r['length']} K={r['count']}"
        smallest.setdefault(key, None)
        if smallest[key] is None and r["planted"]["loss"]["set_p"] <= 1e-6:
            smallest[key] = r["repeat"]
    return {
        "null_set_tests": len(nulls_set),
        "null_set_rejections_at_alpha": int(sum(p <= alpha for p in nulls_set)),
        "null_canary_rank_tests": int(total),
        "null_canary_rank_rejections_at_alpha": int(round(flagged)),
        "smallest_r_with_p_le_1e-6": smallest,
    }


def write_power_report(rows: Sequence[dict[str, Any]], cfg: SimConfig, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(f"{r['kind']} L={r['length']} K={r['count']}", []).append(r)
    for g, rs in groups.items():
        rs = sorted(rs, key=lambda x: x["repeat"])
        xs = [r["repeat"] for r in rs]
        for s in SCORES:
            if s in rs[0]["planted"]:
                axes[0].plot(
                    xs, [r["planted"][s]["per_canary_detect"] for r in rs], "o-", label=f"{g}, {s}"
                )
        axes[1].plot(
            xs, [max(r["planted"]["loss"]["set_p"], 1e-300) for r in rs], "o-", label=f"{g}, loss"
        )
    axes[0].set_title(f"per-canary rank test: detection rate at alpha={cfg.alpha}")
    axes[1].set_title("set-level rank-sum p-value (loss), log scale")
    axes[1].set_yscale("log")
    axes[1].axhline(1e-6, color="k", ls="--", lw=0.8)
    axes[1].axhline(cfg.alpha, color="r", ls=":", lw=0.8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("repetitions r")
        ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    fig.savefig(out / "power.png")
    plt.close(fig)
    summary = summary_numbers(rows, cfg.alpha)
    (out / "power.json").write_text(
        json.dumps({"config": asdict(cfg), "cells": list(rows), "summary": summary}, indent=1)
        + "\n"
    )
    md = (
        f"# Power analysis (controlled injection, tiny models trained from scratch on CPU)\n\n"
        f"M={cfg.counterfactuals} counterfactuals, alpha={cfg.alpha}; plan: rank-sum on loss. "
        "'canaries detected' = share of planted canaries whose own exact rank test has p <= alpha; "
        "'null' = the same model audited with a never-planted canary set.\n\n"
        + power_table(rows)
        + f"\n\nSummary: `{json.dumps(summary)}`\n\n![power curves](power.png)\n"
    )
    (out / "power.md").write_text(md)


# --- set-inference simulation -----------------------------------------------------------------


@dataclass(frozen=True)
class SetSimConfig:
    users_in: int = 20
    users_out: int = 100  # test out-world users (negatives), never published
    reference_users: int = 199  # out-world users forming the exact test's null sets
    k: int = 8  # documents (marks) per user
    length: int = 6
    repeat: int = 1  # times each marked document appears in training
    mode: str = "per-document"
    alpha: float = 0.01
    corpus_bytes: int = 300_000
    vocab_size: int = 2048
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)


def run_set_inference(
    cfg: SetSimConfig, out_dir: str | Path, progress: bool = False
) -> dict[str, Any]:
    """Train once on a corpus with in-world users' marked documents; test every user."""
    from harness.backends.hf import HFBackend
    from harness.scoring import ScoringRequest, score_texts
    from harness.stats import mi_metrics, set_mean_sets_test
    from tasks.set_inference import mark_documents

    out = Path(out_dir)
    path = out / "set-inference.json"
    if path.exists():
        return json.loads(path.read_text())
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    docs = stdlib_docstrings(cfg.corpus_bytes)
    k_marks = cfg.k if cfg.mode == "per-document" else 1
    spec = words_spec(cfg.length)
    plan = Plan(
        score="loss",
        statistic="set-mean-sets",
        counterfactuals=cfg.reference_users,
        alpha=cfg.alpha,
    )
    users = []
    for u in range(cfg.users_in + cfg.users_out):
        cs, _ = new_canary_set(spec, k_marks, plan, derive_seed("sim-user", f"{cfg.seed}|{u}"))
        users.append(cs)
    if cfg.users_in * cfg.k > len(docs):
        raise ValueError(
            f"{cfg.users_in} users x {cfg.k} documents exceed the corpus ({len(docs)} docs)"
        )
    texts = list(docs)
    for u in range(cfg.users_in):  # user u owns documents u*K .. u*K+K-1 and marks them
        own = list(range(u * cfg.k, (u + 1) * cfg.k))
        marked, _ = mark_documents(
            [texts[i] for i in own], users[u], derive_seed("sim-mark", str(u)), cfg.mode
        )
        for i, t in zip(own, marked, strict=True):
            texts[i] = t
    texts = texts + [t for u in range(cfg.users_in) for t in texts[u * cfg.k : (u + 1) * cfg.k]] * (
        cfg.repeat - 1
    )
    from transformers import AutoTokenizer

    tok_path = _tokenizer(work, docs, cfg.vocab_size)
    tr = train_causal_lm(
        texts,
        AutoTokenizer.from_pretrained(tok_path),
        cfg.train,
        work / "model",
        progress=progress,
        desc="set-inference",
    )
    backend = HFBackend(tr.path)
    # reference out-world users: one shared pool of fresh mark sets, never published
    from canaries.drbg import HashDRBG
    from canaries.generators import draw_canaries

    all_user_texts = [c.text for cs in users for c in cs.canaries]
    ref = draw_canaries(
        spec,
        HashDRBG(derive_seed("sim-ref", str(cfg.seed)), "counterfactuals"),
        cfg.reference_users * k_marks,
        exclude=all_user_texts,
    )
    texts_all = all_user_texts + [c.text for c in ref]
    rows = score_texts(
        texts_all, backend, ScoringRequest(("loss",), {}), derive_seed("sim-score", str(cfg.seed))
    )
    s = np.array([r["loss"] for r in rows])
    user_s = s[: len(all_user_texts)].reshape(len(users), k_marks)
    ref_s = s[len(all_user_texts) :]
    pv = np.array([set_mean_sets_test(user_s[u], ref_s).pvalue for u in range(len(users))])
    means = user_s.mean(axis=1)
    pos, neg = slice(0, cfg.users_in), slice(cfg.users_in, None)
    mi = mi_metrics(means[pos], means[neg], fprs=(0.0, 0.01, 0.1), n_bootstrap=500)
    res = {
        "config": asdict(cfg),
        "train_loss": tr.final_loss,
        "in_world_p": pv[pos].tolist(),
        "out_world_p": pv[neg].tolist(),
        "tpr_at_alpha": float(np.mean(pv[pos] <= cfg.alpha)),
        "fpr_at_alpha": float(np.mean(pv[neg] <= cfg.alpha)),
        "fpr_at_100_tpr": mi.fpr_at_full_tpr,
        "auc": mi.auc,
        "mi_metrics": mi.to_dict(),
        "min_attainable_p": 1 / (cfg.reference_users + 1),
        "note": (
            "per-user tests share one reference pool of out-world users, so they are each exact "
            "but not independent of each other; FPR@100%TPR and AUC are estimates"
        ),
    }
    path.write_text(json.dumps(res, indent=1) + "\n")
    (out / "set-inference.md").write_text(
        f"# Set-inference simulation ({cfg.mode}, K={cfg.k}, r={cfg.repeat})\n\n"
        f"{cfg.users_in} in-world users (marked documents trained on), {cfg.users_out} out-world test users "
        f"(never published), {cfg.reference_users} reference out-world users for the exact test.\n\n"
        f"| TPR at alpha={cfg.alpha} | FPR at alpha | FPR@100%TPR | AUC |\n|---|---|---|---|\n"
        f"| {res['tpr_at_alpha']:.3f} | {res['fpr_at_alpha']:.3f} | {res['fpr_at_100_tpr']:.3f} | "
        f"{res['auc']:.3f} |\n\n{res['note']}.\n"
    )
    return res
