"""The repudiation stress test: can the owner of a model forge a PoR against this evidence?

On a model trained here with PoL logging: calibrate the verification tolerance on honest
replays; pick (a) natural documents that a threshold MI attack calls members and (b) the
planted canaries; forge PoRs (Kong et al.'s Algorithm 2/3); verify each forged log at the
calibrated tolerance; rebuild theta' and rerun the MI attack and the canary test on it.
Per class: the fraction of targets with a valid PoR, ||theta - theta'||, the MI flips
(Diff / Common / Validation) and the canary test's p-value on theta'.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from canaries.drbg import HashDRBG, derive_seed
from harness.repudiation.forge import ForgeOptions, group_targets
from harness.repudiation.por import PoR, Repudiation, repudiate
from harness.repudiation.replay import Replayer, Run, replay, run_from_log
from harness.repudiation.stress_scoring import (
    ModelScores,
    Population,
    canary_test,
    score_model,
)
from harness.repudiation.verify import Calibration, calibrate, verify_log, verify_run
from harness.stats import TestResult
from harness.train.pol import PoLLog, load_log
from harness.train.state import flat_parameters, parameter_distance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StressConfig:
    """Options of the stress test; kappa, mu, lam are the forger's (Kong et al.)."""

    natural: int = 8  # natural documents to repudiate (among those the MI attack calls members)
    common: int = 5  # members and non-members per PoR checked for Common / Validation flips
    fpr: float = 0.1  # the MI attack's false-positive rate on known non-members
    kappa: int = 2
    mu: int = 16
    lam: int = 1
    calibrate: int = 4  # honest segments replayed to calibrate the tolerance
    factor: float = 10.0  # tolerance = factor x the largest honest-replay disagreement
    mi_score: str = "loss"
    seed: int = 0
    swap: bool = False  # the stronger forger (ForgeOptions.swap)


@dataclass(frozen=True)
class PoRRow:
    """One forged PoR and what it did to the evidence."""

    cls: str  # "natural", "canary" or "all-canaries"
    por: int
    targets: int
    removed_blocks: int
    forged_steps: int
    valid: bool  # the forged log verifies at the calibrated tolerance
    failed_segments: int
    segments: int
    replayed_segments: int  # those holding a re-batched step (the rest are the honest ones)
    replayed_steps: int
    integrity_problems: int
    median_gradient_gap: float  # ||g(B') - g(B_t)|| / ||g(B_t)|| over the re-batched steps
    max_error_over_tolerance: float
    distance: float
    relative_distance: float
    kong_d_theta: float
    diff_flips: int  # targets the MI attack calls members of theta but not of theta'
    common_flips: int
    common_n: int
    called_flips: int  # other members the attack called members on theta (the Diff control)
    called_n: int
    validation_flips: int
    validation_n: int
    canary_test: TestResult | None  # the canary set's test on theta' (canary PoRs only)

    @property
    def canary_log10_p(self) -> float | None:
        return None if self.canary_test is None else float(self.canary_test.log10_pvalue)


@dataclass(frozen=True)
class StressResult:
    config: StressConfig
    tolerance: float
    calibration_noise: tuple[float, ...]
    honest_valid: bool
    honest_max_error: float
    honest_rerun_distance: float  # ||theta - full replay with another summation order||
    theta_norm: float
    parameters: int
    natural_called_members: int  # of the member documents considered
    natural_candidates: int
    canaries_called_members: int
    canaries: int
    theta_canary_log10_p: float
    rows: tuple[PoRRow, ...]
    compute: dict[str, int]
    seconds: float


def _pick(n: int, k: int, seed: int, purpose: str) -> list[int]:
    order = list(range(n))
    HashDRBG(derive_seed("tdp-stress", str(seed)), purpose).shuffle(order)
    return sorted(order[:k])


def _groups(
    n_natural: int, n_canary: int, lam: int, seed: int
) -> tuple[list[list[int]], list[str]]:
    nat = group_targets(n_natural, lam, seed)
    can = [[n_natural + i for i in g] for g in group_targets(n_canary, lam, seed)]
    groups, classes = nat + can, ["natural"] * len(nat) + ["canary"] * len(can)
    if n_canary > 1 and lam < n_canary:  # the whole canary set at once: what a defendant needs
        groups.append(list(range(n_natural, n_natural + n_canary)))
        classes.append("all-canaries")
    return groups, classes


def stress_test(
    pol: PoLLog, original, canaries: Sequence[str], counterfactuals: Sequence[str],  # noqa: ANN001
    statistic: str, canary_score: str, nonmembers: Sequence[str], work: Path,
    config: StressConfig, reference=None,  # noqa: ANN001 - Backends
) -> StressResult:
    """Run the whole stress test; `original` is a Backend on the model the log ends with."""
    t0 = time.time()
    run = run_from_log(pol)
    cal = calibrate(run, config.calibrate, config.factor, config.seed)
    honest = verify_run(run, cal.tolerance)
    final = run.load_state(run.checkpoint_steps[-1])
    rerun_state = replay(Replayer(run.problem), run.load_state(0), run.steps, micro_batches=2)
    rerun = parameter_distance(rerun_state, final)
    log.info("tolerance %.3g; honest log valid: %s", cal.tolerance, honest.valid)
    pop = Population.build(pol, canaries, counterfactuals, nonmembers, config)
    base = score_model(original, pop, (config.mi_score, canary_score), reference, config.fpr)
    natural = pop.natural_targets(base, config)
    texts = [pop.members[i] for i in natural] + list(canaries)
    groups, classes = _groups(len(natural), len(canaries), config.lam, config.seed)
    opts = ForgeOptions(config.kappa, config.mu, config.lam, config.seed, config.swap)
    rep = repudiate(pol, texts, opts, work / "pors", force=True, groups=groups)
    rows = []
    for por, cls, group in zip(rep.pors, classes, groups, strict=True):
        rows.append(_row(por, cls, group, natural, pop, base, cal.tolerance, config,
                         statistic, canary_score, reference))
        log.info("PoR %d (%s): valid %s, distance %.3g", por.index, cls, rows[-1].valid,
                 por.distance)
    compute = _compute(run, cal, rep, rows)
    theta_test = canary_test(base, statistic, canary_score)
    flat = flat_parameters(final)
    return StressResult(
        config=config, tolerance=cal.tolerance, calibration_noise=cal.noise,
        honest_valid=honest.valid, honest_max_error=honest.max_error,
        honest_rerun_distance=rerun, theta_norm=float(flat.norm()),
        parameters=int(flat.numel()), natural_called_members=int(base.natural_member.sum()),
        natural_candidates=len(pop.members), canaries_called_members=int(base.canary_member.sum()),
        canaries=len(canaries), theta_canary_log10_p=float(theta_test.log10_pvalue),
        rows=tuple(rows), compute=compute, seconds=time.time() - t0,
    )


def _compute(run: Run, cal: Calibration, rep: Repudiation, rows: list[PoRRow]) -> dict[str, int]:
    """Work done, in optimiser steps / gradient evaluations on one minibatch."""
    segments = run.segments()
    return {
        "calibration_steps": sum(
            (segments[i][1] - segments[i][0]) * (1 + len(cal.variants)) for i in cal.segments
        ),
        "honest_verification_steps": len(run.steps),
        "honest_rerun_steps": len(run.steps),
        "forge_trajectory_steps": rep.cost.trajectory_steps,
        "forge_search_gradients": rep.cost.search_gradients,
        "forge_searched_step_splits": rep.cost.searched,
        "paper_precompute_kappa_mu_tau": rep.cost.paper_precompute,
        "reconstruction_steps": rep.reconstruction_steps,
        "forged_verification_steps": sum(r.replayed_steps for r in rows),
    }


def _row(
    por: PoR, cls: str, group: list[int], natural: list[int], pop: Population, base: ModelScores,
    tolerance: float, config: StressConfig, statistic: str, canary_score: str, reference,  # noqa: ANN001
) -> PoRRow:
    from harness.backends.hf import HFBackend

    # segments without a re-batched step replay exactly as the honest log's (verified, error 0)
    forged_log = load_log(por.log)
    c = [c.step for c in forged_log.checkpoints]
    touched = [i for i, (a, b) in enumerate(zip(c[:-1], c[1:], strict=True))
               if any(a <= t < b for t in por.forged_steps)]
    verdict = verify_log(forged_log, tolerance, only=touched)
    forged = score_model(HFBackend(por.model, dtype="float32", device="cpu"), pop,
                         (config.mi_score, canary_score), reference, config.fpr)
    nat = [natural[i] for i in group if i < len(natural)]
    can = [i - len(natural) for i in group if i >= len(natural)]
    diff = base.diff(forged, nat, can)
    called = base.called_member_flips(forged, nat, can)
    others = [i for i in range(len(pop.members)) if i not in nat]
    picked = _pick(len(others), config.common, config.seed + por.index, "common")
    common = [others[i] for i in picked]
    valid_ix = _pick(len(pop.validation), config.common, config.seed + por.index, "validation")
    test = canary_test(forged, statistic, canary_score) if can else None
    return PoRRow(
        cls=cls, por=por.index, targets=len(group), removed_blocks=por.removed_blocks,
        forged_steps=len(por.forged_steps), valid=verdict.valid,
        failed_segments=len(verdict.failed), segments=len(c) - 1, replayed_segments=len(touched),
        replayed_steps=sum(c[i + 1] - c[i] for i in touched),
        integrity_problems=len(verdict.problems),
        median_gradient_gap=float(np.median(np.divide(por.gradient_gaps, por.gradient_norms))),
        max_error_over_tolerance=verdict.max_error / tolerance if tolerance else float("inf"),
        distance=por.distance, relative_distance=por.relative_distance,
        kong_d_theta=por.kong_d_theta, diff_flips=diff,
        common_flips=base.member_flips(forged, common), common_n=len(common),
        called_flips=called[0], called_n=called[1],
        validation_flips=base.validation_flips(forged, valid_ix), validation_n=len(valid_ix),
        canary_test=test,
    )
