"""`tdp simulate`: power analysis by controlled injection, one tiny model trained per cell.

A cell fixes (repetitions r, canary length, canary kind, canaries per set K). It plants G
independent canary sets (G "users") r times each into a clean corpus, trains a model from
scratch, scores the planted canaries and a pool of fresh generator draws once, and runs
per set: the rank-sum test (K canaries vs M counterfactuals) and the set-mean test (the
set vs N out-world users of K marks) for every score function. The detection rate is the
fraction of the G sets with p <= alpha; FPR@100%TPR (MembershipTracker's metric) is the
fraction of out-world users whose set mean reaches the lowest planted user's set mean.

Resumable: each finished cell is written to OUT/cells/<cell>.json and never retrained;
the clean reference model is trained once per run and reused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from canaries.canary_set import Plan, new_canary_set
from canaries.drbg import HashDRBG, derive_seed
from canaries.generators import GeneratorSpec, draw_canaries, tokens_spec, words_spec
from canaries.inject import inject_texts
from harness.figures import fig_png
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer

TESTS = ("rank-sum", "set-mean")
TINY_TRAIN = TrainConfig(
    n_layer=1, n_embd=64, n_head=2, block_size=32, epochs=6, batch_size=16, lr=5e-3, warmup_steps=5
)


@dataclass(frozen=True)
class Cell:
    """One point of the sweep."""

    repeat: int
    length: int
    kind: str
    canaries: int

    @property
    def key(self) -> str:
        return f"r{self.repeat:03d}-L{self.length}-{self.kind}-K{self.canaries}"


@dataclass(frozen=True)
class SimulateConfig:
    """The sweep grid and everything held fixed across it."""

    repeats: tuple[int, ...] = (1, 2, 4, 8, 16)
    lengths: tuple[int, ...] = (6,)
    kinds: tuple[str, ...] = ("words",)
    canaries: tuple[int, ...] = (8,)
    groups: int = 4
    counterfactuals: int = 200
    out_world_users: int = 200
    alpha: float = 0.01
    scores: tuple[str, ...] = ("loss", "zlib", "min_k", "ref_ratio")
    corpus_bytes: int = 40_000
    vocab_size: int = 512
    train: TrainConfig = field(default_factory=lambda: TINY_TRAIN)
    seed: str = "0"

    def __post_init__(self) -> None:
        if any(r < 1 for r in self.repeats) or any(k < 1 for k in self.canaries) or self.groups < 1:
            raise ValueError("repeats, canaries and groups must be >= 1")
        bad = set(self.kinds) - {"words", "tokens"}
        if bad:
            raise ValueError(f"canary kinds must be 'words' or 'tokens', got {sorted(bad)}")

    def cells(self) -> list[Cell]:
        return [
            Cell(*c)
            for c in itertools.product(self.repeats, self.lengths, self.kinds, self.canaries)
        ]

    def fixed_digest(self) -> str:
        """Hash of everything except the grid: cells from runs with another digest are not mixed."""
        d = asdict(self)
        for grid in ("repeats", "lengths", "kinds", "canaries"):
            d.pop(grid)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


DEMO_PRESET = SimulateConfig(
    repeats=(1, 2, 4, 8),
    lengths=(10,),
    canaries=(32,),
    groups=1,
    counterfactuals=500,
    out_world_users=100,
    corpus_bytes=300_000,
    vocab_size=2048,
    train=TrainConfig(),
)


@dataclass(frozen=True)
class CellResult:
    cell: Cell
    digest: str
    pvalues: dict[str, dict[str, list[float]]]  # test -> score -> one p per planted set
    fpr_at_full_tpr: dict[str, float]  # score -> FPR@100%TPR over out-world users
    train: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        return cls(**{**d, "cell": Cell(**d["cell"])})


def fpr_at_full_tpr(member: np.ndarray, nonmember: np.ndarray) -> float:
    """Smallest FPR at which every member is detected: #{non-members >= min member} / #non-members."""
    return float(np.mean(nonmember >= member.min()))


class Simulation:
    """Shared state of a run: corpus, tokenizer, clean reference model, output folders."""

    def __init__(
        self, config: SimulateConfig, out: str | Path, work: str | Path, progress: bool = False
    ):
        self.config, self.out, self.work, self.progress = config, Path(out), Path(work), progress
        self.digest = config.fixed_digest()
        (self.out / "cells").mkdir(parents=True, exist_ok=True)
        self.docs = stdlib_docstrings(config.corpus_bytes)
        self.tokenizer = train_tokenizer(self.docs, config.vocab_size)
        self.tok_dir = self.work / self.digest / "tokenizer"
        self.tokenizer.save_pretrained(self.tok_dir)
        self._reference: Any = None

    def reference(self) -> Any:
        from harness.backends.hf import HFBackend

        if self._reference is None:
            path = self.work / self.digest / "reference"
            if not (path / "tdp_training.json").exists():
                train_causal_lm(
                    self.docs, self.tokenizer, self.config.train, path, self.progress, "reference"
                )
            self._reference = HFBackend(str(path), device="cpu", dtype="float32")
        return self._reference

    def spec(self, cell: Cell) -> GeneratorSpec:
        return (
            words_spec(cell.length)
            if cell.kind == "words"
            else tokens_spec(cell.length, str(self.tok_dir))
        )

    def cell_path(self, cell: Cell) -> Path:
        return self.out / "cells" / f"{cell.key}.json"

    def load(self, cell: Cell) -> CellResult | None:
        path = self.cell_path(cell)
        if not path.exists():
            return None
        result = CellResult.from_dict(json.loads(path.read_text()))
        if result.digest != self.digest:
            raise ValueError(
                f"{path} comes from a run with other fixed settings; use another --out"
            )
        return result

    def run_cell(self, cell: Cell) -> CellResult:
        """Train one model with G planted sets and test every set; nothing is read from disk."""
        from harness.backends.hf import HFBackend
        from harness.scoring import ScoringRequest, score_texts
        from harness.stats import rank_sum_test, set_mean_test

        c, t0 = self.config, time.time()
        seed = derive_seed("tdp-simulate-v1", c.seed, cell.key)
        spec = self.spec(cell)
        k, g = cell.canaries, c.groups
        planted, _ = new_canary_set(spec, g * k, Plan(), seed=derive_seed("planted", seed))
        injected, _ = inject_texts(self.docs, planted, cell.repeat, derive_seed("inject", seed))
        model_dir = self.work / self.digest / cell.key
        trained = train_causal_lm(
            injected,
            self.tokenizer,
            replace(c.train, seed=c.train.seed),
            model_dir,
            self.progress,
            f"train {cell.key}",
        )
        pool_n = max(c.counterfactuals, c.out_world_users * k)
        pool = draw_canaries(
            spec, HashDRBG(seed, "counterfactuals"), pool_n, exclude=planted.texts()
        )
        texts = planted.texts() + [p.text for p in pool]
        target = HFBackend(trained.path, device="cpu", dtype="float32")
        ref = self.reference() if "ref_ratio" in c.scores else None
        rows = score_texts(
            texts, target, ScoringRequest(c.scores, {"min_k": {"k": 0.2}}), seed, ref
        )
        pvalues: dict[str, dict[str, list[float]]] = {t: {} for t in TESTS}
        fpr: dict[str, float] = {}
        for s in c.scores:
            x = np.array([r[s] for r in rows])
            sets, rest = x[: g * k].reshape(g, k), x[g * k :]
            users = rest[: c.out_world_users * k].reshape(c.out_world_users, k)
            pvalues["rank-sum"][s] = [
                rank_sum_test(u, rest[: c.counterfactuals]).pvalue for u in sets
            ]
            pvalues["set-mean"][s] = [set_mean_test(u, users).pvalue for u in sets]
            fpr[s] = fpr_at_full_tpr(sets.mean(axis=1), users.mean(axis=1))
        train = {
            "parameters": trained.parameters,
            "tokens_per_epoch": trained.tokens_per_epoch,
            "final_loss": trained.final_loss,
            "seconds": trained.seconds,
        }
        return CellResult(cell, self.digest, pvalues, fpr, train, time.time() - t0)

    def run(self, log: Any = print) -> list[CellResult]:
        """Run every cell not already on disk; returns all cells' results in grid order."""
        results = []
        for cell in self.config.cells():
            done = self.load(cell)
            if done is None:
                log(f"[simulate] cell {cell.key}: training")
                done = self.run_cell(cell)
                tmp = self.cell_path(cell).with_suffix(".tmp")
                tmp.write_text(json.dumps(done.to_dict(), indent=1) + "\n")
                tmp.replace(self.cell_path(cell))
            else:
                log(f"[simulate] cell {cell.key}: done earlier, loaded")
            results.append(done)
        return results


def detection_rate(ps: list[float], alpha: float) -> float:
    return float(np.mean(np.array(ps) <= alpha))


def table_markdown(results: list[CellResult], config: SimulateConfig) -> str:
    lines = [
        f"| cell (r, L, kind, K) | test | score | detected at alpha={config.alpha:g} | median p | min p "
        "| FPR@100%TPR |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        c = res.cell
        for test in TESTS:
            for s, ps in res.pvalues[test].items():
                n = len(ps)
                hits = sum(p <= config.alpha for p in ps)
                fpr = f"{res.fpr_at_full_tpr[s]:.3f}" if test == "set-mean" else ""
                lines.append(
                    f"| r={c.repeat}, L={c.length}, {c.kind}, K={c.canaries} | {test} | {s} | {hits}/{n} "
                    f"| {np.median(ps):.3g} | {min(ps):.3g} | {fpr} |"
                )
    return "\n".join(lines)


def power_plot_png(results: list[CellResult], config: SimulateConfig) -> bytes:
    """Detection rate and median p against r, one panel column per (L, kind, K)."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    combos = sorted({(r.cell.length, r.cell.kind, r.cell.canaries) for r in results})
    fig, axes = plt.subplots(
        2, len(combos), figsize=(4.2 * len(combos), 6.4), dpi=110, squeeze=False
    )
    colors = dict(
        zip(config.scores, ["#1864ab", "#2b8a3e", "#e67700", "#c92a2a", "#5f3dc4"], strict=False)
    )
    for j, combo in enumerate(combos):
        rs = sorted(
            (r for r in results if (r.cell.length, r.cell.kind, r.cell.canaries) == combo),
            key=lambda r: r.cell.repeat,
        )
        x = [r.cell.repeat for r in rs]
        for test, style in zip(TESTS, ("-o", "--s"), strict=True):
            for s in config.scores:
                rate = [detection_rate(r.pvalues[test][s], config.alpha) for r in rs]
                med = [float(np.median(r.pvalues[test][s])) for r in rs]
                axes[0, j].plot(x, rate, style, color=colors.get(s), ms=3, label=f"{test} / {s}")
                axes[1, j].plot(x, med, style, color=colors.get(s), ms=3)
        axes[0, j].set_title(
            f"L={combo[0]} {combo[1]}, K={combo[2]}, {config.groups} sets/cell", fontsize=9
        )
        axes[0, j].set_ylabel(f"detection rate at alpha={config.alpha:g}")
        axes[1, j].set_ylabel("median p")
        axes[1, j].set_yscale("log")
        axes[1, j].axhline(config.alpha, color="grey", lw=0.8, ls=":")
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("repetitions r")
            ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig_png(fig)


def write_summary(
    results: list[CellResult], config: SimulateConfig, out: str | Path, command: str = ""
) -> Path:
    """power.png, table.md and summary.json in `out`."""
    out = Path(out)
    (out / "power.png").write_bytes(power_plot_png(results, config))
    table = table_markdown(results, config)
    (out / "table.md").write_text(
        f"# Power analysis\n\nCommand: `{command}`\n\n{config.groups} planted canary sets per cell, "
        f"rank-sum against M={config.counterfactuals} counterfactuals, set-mean against "
        f"N={config.out_world_users} out-world users; training {json.dumps(asdict(config.train))}.\n\n"
        f"{table}\n\n![power curves](power.png)\n"
    )
    (out / "summary.json").write_text(
        json.dumps(
            {"config": asdict(config), "command": command, "cells": [r.to_dict() for r in results]},
            indent=1,
        )
        + "\n"
    )
    return out
