"""The proof-of-repudiation forger: Kong, Chowdhury and Chaudhuri's Algorithm 2 (with Algorithm 3's
extensions for momentum, weight decay and learning-rate schedules).

For every step t whose minibatch B_t holds data of a target group, the forger looks for a
minibatch from the data without that group whose gradient at the *original* parameters
theta_t is closest (l2) to the gradient of B_t, and writes it into the log instead.
Key idea 1 (kappa splits): at each step the data are split at random into kappa equal parts,
each target group lying wholly inside one part (their Eqs. 5 and 6); mu candidate minibatches
are drawn from outside part k, and the best one serves every group in part k. Key idea 2
(lambda): the caller may pool lambda targets into one group, so one PoR covers all of them.
Algorithm 3: the harness trains with AdamW (decoupled weight decay, first and second moments)
and a linear warmup/decay schedule. As the paper does, candidates are chosen on the plain
minibatch gradient (AdamW's weight decay acts on the parameters, not the gradient, so it is
identical for every candidate), and the forged trajectory is rebuilt with the full update rule
and the logged per-step learning rates. Only steps that some target group needs are searched
(the paper precomputes all n points; these are the same choices restricted to our targets),
and D_sub is all of D minus part k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from canaries.drbg import HashDRBG, derive_seed
from harness.repudiation.replay import Replayer, Run, State, replay
from harness.train.pol import StepRecord


@dataclass(frozen=True)
class ForgeOptions:
    """kappa: splits per step; mu: candidate minibatches per split; lam: targets per PoR.

    `swap` (not in the paper; off by default): a stronger forger for the stress test. Each
    candidate keeps every point of B_t but the targets in part k and redraws only those, from
    D minus the targets in part k (not minus all of part k: PoRs are made for the targets
    only), so it differs from B_t in as few points as possible.
    """

    kappa: int = 2
    mu: int = 16
    lam: int = 1
    seed: int = 0
    swap: bool = False

    def __post_init__(self) -> None:
        if self.kappa < 2:
            raise ValueError(
                f"kappa must be >= 2 (candidates come from outside one part), got {self.kappa}"
            )
        if self.mu < 1 or self.lam < 1:
            raise ValueError(f"mu and lambda must be >= 1, got mu={self.mu}, lambda={self.lam}")

    def seed_bytes(self) -> bytes:
        return derive_seed("tdp-forge", str(self.seed))


@dataclass(frozen=True)
class Forgery:
    """One PoR: the step records of a run on the data without `removed`."""

    removed: frozenset[int]
    steps: tuple[StepRecord, ...]
    forged_steps: tuple[int, ...]  # steps whose minibatch was replaced
    gradient_gaps: tuple[float, ...]  # ||g(B') - g(B_t)|| at theta_t, per forged step
    gradient_norms: tuple[float, ...]  # ||g(B_t)|| at theta_t, per forged step


@dataclass(frozen=True)
class ForgeCost:
    """Work done, in the paper's unit (gradient evaluations on one minibatch)."""

    trajectory_steps: int  # honest replay to reach the theta_t the search needs
    search_gradients: int  # the original gradient plus mu candidates per (step, split) searched
    searched: int  # (step, split) pairs searched
    paper_precompute: int  # kappa * mu * tau: Algorithm 2 over all n points


@dataclass(frozen=True)
class _Choice:
    batch: tuple[int, ...]
    gap: float
    norm: float


def merge_units(groups: Sequence[frozenset[int]]) -> list[frozenset[int]]:
    """Merge groups that share a data point: such groups must lie in one part (Eq. 6)."""
    units: list[set[int]] = []
    for g in groups:
        touching = [u for u in units if u & g]
        merged = set(g).union(*touching)
        units = [u for u in units if not (u & g)] + [merged]
    return [frozenset(u) for u in units]


def split_parts(n: int, units: Sequence[frozenset[int]], kappa: int, rng: HashDRBG) -> list[int]:
    """Part of each data point: units (and lone points) in random order, each to the part that
    is smallest so far, so parts are near n/kappa and no unit is cut (Eqs. 5 and 6)."""
    in_unit = set().union(*units) if units else set()
    items: list[Sequence[int]] = [sorted(u) for u in units]
    items += [[i] for i in range(n) if i not in in_unit]
    rng.shuffle(items)
    part, sizes = [0] * n, [0] * kappa
    for item in items:
        k = min(range(kappa), key=lambda j: sizes[j])
        for i in item:
            part[i] = k
        sizes[k] += len(item)
    return part


def draw_batch(pool: Sequence[int], b: int, rng: HashDRBG) -> tuple[int, ...]:
    """b distinct points of `pool`, uniformly (a partial Fisher-Yates shuffle)."""
    items = list(pool)
    for i in range(b):
        j = i + rng.randbelow(len(items) - i)
        items[i], items[j] = items[j], items[i]
    return tuple(items[:b])


def _search(
    replayer: Replayer, run: Run, t: int, k: int, excluded: set[int], opts: ForgeOptions,
    target: torch.Tensor,
) -> _Choice:
    """Best of mu candidate minibatches (as large as B_t) avoiding `excluded`, at theta_t."""
    size = len(run.steps[t].batch)
    pool = [i for i in range(run.n_points) if i not in excluded]
    if len(pool) < size:
        raise ValueError(f"only {len(pool)} data points outside split {k}: fewer than a batch")
    rng = HashDRBG(opts.seed_bytes(), f"candidates/{t}/{k}")
    keep = [i for i in run.steps[t].batch if i not in excluded] if opts.swap else []
    kept = set(keep)
    fill = [i for i in pool if i not in kept]
    best: _Choice | None = None
    for _ in range(opts.mu):
        batch = tuple(keep) + draw_batch(fill, size - len(keep), rng)
        gap = float(torch.linalg.vector_norm(replayer.gradient(batch) - target))
        if best is None or gap < best.gap:
            best = _Choice(batch, gap, float(torch.linalg.vector_norm(target)))
    return best  # type: ignore[return-value]  # mu >= 1


def _excluded(
    n: int, units: Sequence[frozenset[int]], part: list[int], k: int, swap: bool
) -> set[int]:
    """What candidates for part k must avoid: all of part k (Algorithm 2, where every point
    gets a PoR), or with `swap` only the targets in part k (the only PoRs made here)."""
    if swap:
        return {i for u in units if part[min(u)] == k for i in u}
    return {i for i in range(n) if part[i] == k}


def forge(
    run: Run, groups: Sequence[frozenset[int]], opts: ForgeOptions
) -> tuple[list[Forgery], ForgeCost]:
    """One forged run per group of data points (each group: the points of its targets)."""
    if any(not g for g in groups):
        raise ValueError("a target group holds no data point")
    units = merge_units(groups)
    hit = [[g for g, pts in enumerate(groups) if pts & set(s.batch)] for s in run.steps]
    chosen: dict[tuple[int, int], _Choice] = {}
    part_of_group: dict[tuple[int, int], int] = {}
    replayer, traj, searched = Replayer(run.problem), 0, 0
    for a, b in run.segments():
        if not any(hit[a:b]):
            continue
        replayer.load(run.load_state(a))
        for t in range(a, b):
            if hit[t]:
                rng = HashDRBG(opts.seed_bytes(), f"split/{t}")
                part = split_parts(run.n_points, units, opts.kappa, rng)
                target = replayer.gradient(run.steps[t].batch)
                for g in hit[t]:
                    k = part[min(groups[g])]
                    part_of_group[(t, g)] = k
                    if (t, k) not in chosen:
                        excluded = _excluded(run.n_points, units, part, k, opts.swap)
                        chosen[(t, k)] = _search(replayer, run, t, k, excluded, opts, target)
                        searched += 1
            replayer.step(run.steps[t])
            traj += 1
    forgeries = [
        _assemble(run, g, groups[g], hit, chosen, part_of_group) for g in range(len(groups))
    ]
    cost = ForgeCost(
        trajectory_steps=traj,
        search_gradients=replayer.gradient_evaluations - traj,
        searched=searched,
        paper_precompute=opts.kappa * opts.mu * len(run.steps),
    )
    return forgeries, cost


def _assemble(
    run: Run, g: int, removed: frozenset[int], hit: list[list[int]],
    chosen: dict[tuple[int, int], _Choice], part_of_group: dict[tuple[int, int], int],
) -> Forgery:
    steps, forged, gaps, norms = [], [], [], []
    for t, record in enumerate(run.steps):
        if g in hit[t]:
            c = chosen[(t, part_of_group[(t, g)])]
            steps.append(StepRecord(record.lr, c.batch))
            forged.append(t)
            gaps.append(c.gap)
            norms.append(c.norm)
        else:
            steps.append(record)
    if any(removed & set(s.batch) for s in steps):  # cannot happen: candidates avoid part k
        raise RuntimeError("a forged run uses a removed data point")
    return Forgery(removed, tuple(steps), tuple(forged), tuple(gaps), tuple(norms))


def reconstruct(run: Run, forgery: Forgery, replayer: Replayer | None = None) -> State:
    """theta': the state reached by replaying the forged steps from the initial checkpoint."""
    replayer = replayer or Replayer(run.problem)
    return replay(replayer, run.load_state(run.checkpoint_steps[0]), forgery.steps)


def forged_run(run: Run, forgery: Forgery) -> Run:
    """The run a forged log claims: the original checkpoints with the forged minibatches."""
    return Run(run.problem, forgery.steps, run.n_points, run.batch_size, run.checkpoint_steps,
               run.load_state)


def group_targets(count: int, lam: int, seed: int) -> list[list[int]]:
    """Targets 0..count-1 pooled at random into groups of lam (Key idea 2; the last may be
    short)."""
    order = list(range(count))
    HashDRBG(derive_seed("tdp-forge-groups", str(seed)), "groups").shuffle(order)
    return [sorted(order[i : i + lam]) for i in range(0, count, lam)]
