"""How close can a forger get? The gradient gap of the best of mu candidate minibatches.

Kong et al.'s forger rests on one premise: among a few hundred minibatches without the
target there is one whose gradient at theta_t is close to that of the minibatch with it. This
measures the premise directly at a few steps that held a target: ||g(B') - g(B_t)|| / ||g(B_t)||
for the best of the first mu of `candidates` draws, for whole new minibatches (the paper's
candidates) and for `swap` candidates (B_t with only the target's blocks redrawn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from canaries.drbg import HashDRBG, derive_seed
from harness.repudiation.forge import draw_batch
from harness.repudiation.replay import Replayer, Run


@dataclass(frozen=True)
class MatchingCurve:
    """Mean over the probed steps of the best relative gradient gap among the first mu."""

    steps: tuple[int, ...]
    mus: tuple[int, ...]
    new_batch: tuple[float, ...]  # the paper's candidates
    swap: tuple[float, ...]  # B_t with the target's points redrawn
    gradient_evaluations: int


def _state_at(replayer: Replayer, run: Run, t: int) -> None:
    """Put the replayer at theta_t (from the last checkpoint at or before t)."""
    start = max(c for c in run.checkpoint_steps if c <= t)
    replayer.load(run.load_state(start))
    for record in run.steps[start:t]:
        replayer.step(record)


def _gap(replayer: Replayer, batch: Sequence[int], target: torch.Tensor, norm: float) -> float:
    return float(torch.linalg.vector_norm(replayer.gradient(batch) - target)) / norm


def matching_curve(
    run: Run, removed: frozenset[int], probes: int = 4, candidates: int = 64,
    mus: Sequence[int] = (1, 4, 16, 64), seed: int = 0,
) -> MatchingCurve:
    """Gradient gaps at up to `probes` evenly spaced steps whose minibatch holds `removed`."""
    held = [t for t, s in enumerate(run.steps) if removed & set(s.batch)]
    if not held:
        raise ValueError("no step holds the target")
    steps = sorted({held[round(i * (len(held) - 1) / max(1, probes - 1))] for i in range(probes)})
    mus = tuple(m for m in mus if m <= candidates)
    replayer = Replayer(run.problem)
    pool = [i for i in range(run.n_points) if i not in removed]
    rng = HashDRBG(derive_seed("tdp-matching", str(seed)), "candidates")
    new, swap = [], []
    for t in steps:
        _state_at(replayer, run, t)
        batch = run.steps[t].batch
        target = replayer.gradient(batch)
        norm = float(torch.linalg.vector_norm(target))
        keep = [i for i in batch if i not in removed]
        fill = [i for i in pool if i not in set(keep)]
        draws = [draw_batch(pool, len(batch), rng) for _ in range(candidates)]
        swaps = [tuple(keep) + draw_batch(fill, len(batch) - len(keep), rng)
                 for _ in range(candidates)]
        new.append([_gap(replayer, b, target, norm) for b in draws])
        swap.append([_gap(replayer, b, target, norm) for b in swaps])
    best = [lambda gaps, m=m: sum(min(g[:m]) for g in gaps) / len(gaps) for m in mus]
    return MatchingCurve(
        steps=tuple(steps), mus=mus, new_batch=tuple(f(new) for f in best),
        swap=tuple(f(swap) for f in best), gradient_evaluations=replayer.gradient_evaluations,
    )
