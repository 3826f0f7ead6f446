"""Proofs of repudiation from a PoL log: locate the targets, forge, rebuild theta', write it all.

Output folder: ``summary.json`` and one ``por-NNN/`` per group of targets, holding ``log/``
(the forged PoL log for D minus the group) and ``model/`` (theta', the model its minibatches
rebuild from the initial weights, for scoring). Nothing is written unless all of it can be.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from canaries.files import atomic_write_text, check_new_output
from harness.repudiation.forge import (
    ForgeCost,
    ForgeOptions,
    Forgery,
    forge,
    group_targets,
    reconstruct,
)
from harness.repudiation.forged_log import save_model, write_forged_log
from harness.repudiation.replay import Replayer, run_from_log
from harness.repudiation.targets import TargetBlocks, locate, log_tokenizer
from harness.train.pol import PoLError, PoLLog, load_blocks, log_json
from harness.train.state import flat_parameters, parameter_distance


@dataclass(frozen=True)
class PoR:
    """One proof of repudiation: which targets it covers and how far theta' lands from theta."""

    index: int
    targets: tuple[int, ...]  # indices into the target list
    removed_blocks: int
    forged_steps: tuple[int, ...]
    gradient_gaps: tuple[float, ...]
    gradient_norms: tuple[float, ...]
    distance: float  # ||theta - theta'||_2
    relative_distance: float  # distance / ||theta||_2
    kong_d_theta: float  # ||theta - theta'||^2 / dim(theta), the paper's Fig. 3 metric
    log: str
    model: str


@dataclass(frozen=True)
class Repudiation:
    """Everything `repudiate` did: the PoRs, the forger's options, and the work in gradients."""

    source_log: str
    source_log_sha256: str
    options: ForgeOptions
    targets: tuple[str, ...]  # sha256 of each target text
    target_blocks: tuple[int, ...]  # blocks each target touches
    pors: tuple[PoR, ...]
    cost: ForgeCost
    reconstruction_steps: int

    def to_dict(self) -> dict:
        return asdict(self)


def target_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def locate_targets(log: PoLLog, texts: Sequence[str]) -> list[TargetBlocks]:
    """Blocks of every target; a target absent from the training data is an error."""
    blocks, tok = load_blocks(log), log_tokenizer(log)
    found = []
    for i, text in enumerate(texts):
        t = locate(blocks, tok, text)
        if not t.blocks and text.endswith("\n"):
            t = locate(blocks, tok, text.rstrip("\n"))
        if not t.blocks:
            head = " ".join(text.split())[:40]
            raise PoLError(f"target {i} ({head!r}...) does not occur in the log's training data")
        found.append(t)
    return found


def repudiate(
    log: PoLLog, texts: Sequence[str], opts: ForgeOptions, out: Path, force: bool = False,
    groups: Sequence[Sequence[int]] | None = None,
) -> Repudiation:
    """Forge one PoR per group of targets (default: random groups of `opts.lam`), rebuild
    each theta', and write the forged logs, models and `summary.json` under `out`."""
    check_new_output(out, force, "repudiation output folder")
    run = run_from_log(log)
    located = locate_targets(log, texts)
    if groups is None:
        groups = group_targets(len(texts), opts.lam, opts.seed)
    groups = [sorted(g) for g in groups]
    blocks = [frozenset().union(*(located[i].blocks for i in g)) for g in groups]
    forgeries, cost = forge(run, blocks, opts)
    theta = run.load_state(run.checkpoint_steps[-1])
    norm = float(flat_parameters(theta).norm())
    dim = int(flat_parameters(theta).numel())
    replayer, tok, pors = Replayer(run.problem), log_tokenizer(log), []
    provenance = {"source_log_sha256": hashlib.sha256(log_json(log).encode()).hexdigest(),
                  "kappa": opts.kappa, "mu": opts.mu, "lambda": opts.lam, "seed": opts.seed,
                  "swap": opts.swap}
    for i, (group, forgery) in enumerate(zip(groups, forgeries, strict=True)):
        theta_prime = reconstruct(run, forgery, replayer)
        where = out / f"por-{i:03d}"
        targets = {"targets_sha256": [target_sha256(texts[j]) for j in group]}
        write_forged_log(log, forgery, where / "log", {**provenance, **targets}, force)
        save_model(log, theta_prime, where / "model", tok)
        dist = parameter_distance(theta, theta_prime)
        pors.append(_por(i, group, forgery, dist, norm, dim, where))
    result = Repudiation(
        source_log=str(log.root), source_log_sha256=provenance["source_log_sha256"], options=opts,
        targets=tuple(target_sha256(t) for t in texts),
        target_blocks=tuple(len(t.blocks) for t in located), pors=tuple(pors), cost=cost,
        reconstruction_steps=len(groups) * len(run.steps),
    )
    atomic_write_text(out / "summary.json", json.dumps(result.to_dict(), indent=1) + "\n",
                      force=True, what="repudiation summary")
    return result


def _por(
    i: int, group: list[int], f: Forgery, dist: float, norm: float, dim: int, where: Path
) -> PoR:
    return PoR(
        index=i, targets=tuple(group), removed_blocks=len(f.removed), forged_steps=f.forged_steps,
        gradient_gaps=f.gradient_gaps, gradient_norms=f.gradient_norms, distance=dist,
        relative_distance=dist / norm if norm else float("inf"), kong_d_theta=dist**2 / dim,
        log=str(where / "log"), model=str(where / "model"),
    )
