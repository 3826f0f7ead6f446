"""Verify a proof-of-learning log by replay, against a tolerance calibrated on honest replays.

As in Jia et al. (2021): a verifier loads checkpoint i, replays the logged steps up to
checkpoint i+1, and measures the l2 distance between what it got and what the log claims
(the reproduction error). It replays every segment, a seeded sample, or the q segments with
the largest updates ||theta_{i+1} - theta_i|| (their top-q heuristic). The tolerance comes
from honest replays: each calibration segment is replayed again with the minibatch gradient
summed in 2 and 4 parts (the same mathematics in another rounding order, as another machine
would compute it); the largest such disagreement, times a safety factor, is the tolerance.
The calibration never trusts the log's checkpoints, so it can be run on any log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from canaries.drbg import HashDRBG, derive_seed
from harness.repudiation.replay import Replayer, Run, replay
from harness.train.pol import PoLError, PoLLog, load_blocks, load_tensors, scheduled_lr
from harness.train.state import parameter_distance

#: micro-batch counts of the calibration replays (1 is the reference)
NOISE_VARIANTS = (2, 4)


@dataclass(frozen=True)
class Calibration:
    """Hardware-noise tolerance: `factor` x the largest honest-replay disagreement seen."""

    tolerance: float
    factor: float
    noise: tuple[float, ...]  # per calibrated segment: max over variants of the disagreement
    segments: tuple[int, ...]  # indices of the calibrated segments
    variants: tuple[int, ...] = NOISE_VARIANTS

    def to_dict(self) -> dict:
        return {"tolerance": self.tolerance, "factor": self.factor, "noise": list(self.noise),
                "segments": list(self.segments), "variants": list(self.variants)}


@dataclass(frozen=True)
class SegmentCheck:
    """The replay of steps [start, end): its error against the log's checkpoint at `end`."""

    start: int
    end: int
    error: float
    update: float  # ||theta_end - theta_start|| as the log claims it
    passed: bool


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one log: integrity problems and the replayed segments."""

    tolerance: float
    checks: tuple[SegmentCheck, ...]
    problems: tuple[str, ...]
    selection: str

    @property
    def valid(self) -> bool:
        return not self.problems and all(c.passed for c in self.checks)

    @property
    def failed(self) -> tuple[SegmentCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def max_error(self) -> float:
        return max((c.error for c in self.checks), default=0.0)

    def to_dict(self) -> dict:
        return {
            "valid": self.valid,
            "tolerance": self.tolerance,
            "selection": self.selection,
            "problems": list(self.problems),
            "segments": [c.__dict__ for c in self.checks],
        }


def calibrate(
    run: Run, segments: int = 4, factor: float = 10.0, seed: int = 0,
    variants: Sequence[int] = NOISE_VARIANTS,
) -> Calibration:
    """Replay up to `segments` seeded segments in every variant; tolerance = factor x max."""
    if factor < 1:
        raise ValueError(f"the safety factor must be >= 1, got {factor}")
    usable = [v for v in variants if 1 < v <= run.batch_size]
    if not usable:
        raise ValueError(f"a batch of {run.batch_size} cannot be split into {list(variants)} parts")
    picked = sample_segments(run, segments, seed)
    replayer, noise = Replayer(run.problem), []
    for i in picked:
        a, b = run.segments()[i]
        start = run.load_state(a)
        ref = replay(replayer, start, run.steps[a:b])
        noise.append(max(parameter_distance(replay(replayer, start, run.steps[a:b], v), ref)
                         for v in usable))
    return Calibration(factor * max(noise), factor, tuple(noise), tuple(picked), tuple(usable))


def sample_segments(run: Run, count: int, seed: int) -> list[int]:
    """`count` distinct segment indices drawn with the documented DRBG (all if fewer)."""
    n = len(run.segments())
    order = list(range(n))
    HashDRBG(derive_seed("tdp-pol-sample", str(seed)), "segments").shuffle(order)
    return sorted(order[: min(count, n)])


def largest_updates(run: Run, q: int) -> list[int]:
    """The q segments whose logged update ||theta_end - theta_start|| is largest."""
    sizes = [parameter_distance(run.load_state(a), run.load_state(b)) for a, b in run.segments()]
    return sorted(int(i) for i in np.argsort(sizes)[::-1][:q])


def check_segments(run: Run, picked: Sequence[int], tolerance: float) -> list[SegmentCheck]:
    """Replay each picked segment once and compare with the checkpoint that ends it."""
    replayer, out = Replayer(run.problem), []
    for i in picked:
        a, b = run.segments()[i]
        start, claimed = run.load_state(a), run.load_state(b)
        error = parameter_distance(replay(replayer, start, run.steps[a:b]), claimed)
        update = parameter_distance(start, claimed)
        out.append(SegmentCheck(a, b, error, update, error <= tolerance))
    return out


def verify_run(
    run: Run, tolerance: float, top_q: int | None = None, sample: int | None = None, seed: int = 0,
    only: Sequence[int] | None = None,
) -> VerifyResult:
    """Replay all segments (default), a seeded sample, the top-q largest updates, or `only`
    the segments given (by index)."""
    if sum(x is not None for x in (top_q, sample, only)) > 1:
        raise ValueError("choose one of top-q, a sample, or a list of segments")
    if only is not None:
        picked, how = sorted(only), f"{len(only)} given segments"
    elif top_q is not None:
        picked, how = largest_updates(run, top_q), f"top-{top_q} largest updates"
    elif sample is not None:
        picked, how = sample_segments(run, sample, seed), f"{sample} sampled segments (seed {seed})"
    else:
        picked, how = list(range(len(run.segments()))), "all segments"
    checks = check_segments(run, picked, tolerance)
    return VerifyResult(tolerance, tuple(checks), (), how)


def integrity_problems(log: PoLLog) -> list[str]:
    """What is wrong with a log before any replay: files, digests, schedule, batches, layout."""
    problems = []
    try:
        n = int(load_blocks(log).shape[0])
    except PoLError as e:
        return [str(e)]
    for c in log.checkpoints:
        try:
            load_tensors(log.checkpoint_path(c), c.sha256)
        except PoLError as e:
            problems.append(str(e))
    steps = [c.step for c in log.checkpoints]
    if not steps or steps[0] != 0 or steps[-1] != len(log.steps) or steps != sorted(set(steps)):
        problems.append(
            f"checkpoints at steps {steps[:4]}... do not run from 0 to {len(log.steps)}"
        )
    for t, s in enumerate(log.steps):
        if not 0 < len(s.batch) <= log.batch_size or min(s.batch) < 0 or max(s.batch) >= n:
            problems.append(f"step {t}: batch is not 1 to {log.batch_size} indices in [0, {n})")
        want = scheduled_lr(log.schedule, t)
        if abs(s.lr - want) > 1e-12 * max(1.0, abs(want)):
            problems.append(f"step {t}: lr {s.lr!r} differs from the declared schedule ({want!r})")
    return problems


def verify_log(
    log: PoLLog, tolerance: float, top_q: int | None = None, sample: int | None = None,
    seed: int = 0, only: Sequence[int] | None = None,
) -> VerifyResult:
    """Integrity checks, then replay; a log with integrity problems is not replayed."""
    from harness.repudiation.replay import run_from_log

    problems = integrity_problems(log)
    if problems:
        return VerifyResult(tolerance, (), tuple(problems), "not replayed")
    return verify_run(run_from_log(log), tolerance, top_q, sample, seed, only)
