"""`repudiation`: could the model's owner forge a proof of repudiation against this evidence?

Needs the model's PoL log (`log=`), non-member documents for the MI attack (`nonmembers=`,
a .jsonl or a folder of .txt) and a work folder (`work=`). The primary test is the canary
set's pre-registered test on the audited model, exactly as `canary-rank` computes it; the
stress test (harness.repudiation.stress) adds the same test on the forged model theta' of
the PoR for all canaries as a secondary test, and its findings as notes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from canaries.corpus import read_corpus
from harness.audit import AuditContext
from harness.registry import Task, TaskError
from harness.repudiation.stress import StressConfig, StressResult, stress_test
from harness.repudiation.stress_report import summary_line, write_stress_result
from harness.results import AuditResult, NamedTest
from harness.train.pol import load_log
from harness.train.state import PARAM
from tasks import canary_rank


@dataclass(frozen=True)
class RepudiationConfig:
    """Where the PoL log, non-members and work folder are; the stress test's options."""

    log: str = ""
    nonmembers: str = ""
    work: str = ""
    natural: int = 8
    common: int = 5
    fpr: float = 0.1
    kappa: int = 2
    mu: int = 16
    lam: int = 1
    calibrate: int = 4
    factor: float = 10.0
    mi_score: str = "loss"
    seed: int = 0
    swap: bool = False

    def stress(self) -> StressConfig:
        d = {k: v for k, v in asdict(self).items() if k not in ("log", "nonmembers", "work")}
        return StressConfig(**d)


def check_model_is_log_end(ctx: AuditContext, pol) -> None:  # noqa: ANN001 - a PoLLog
    """The audited model must be the one the log ends with, bit for bit."""
    from harness.train.pol import load_tensors

    model = getattr(ctx.backend, "model", None)
    if model is None:
        raise TaskError("the repudiation task needs the hf backend (it compares the weights)")
    last = pol.checkpoints[-1]
    state = load_tensors(pol.checkpoint_path(last), last.sha256)
    for name, p in model.named_parameters():
        want = state.get(PARAM + name)
        if want is None or want.shape != p.shape or not bool((want == p.detach().cpu()).all()):
            raise TaskError(f"the audited model is not the one the PoL log ends with ({name}); "
                            "load it with dtype=float32")


def run(ctx: AuditContext, config: RepudiationConfig) -> AuditResult:
    for key in ("log", "nonmembers", "work"):
        if not getattr(config, key):
            raise TaskError(f"the repudiation task needs --option {key}=PATH")
    pol = load_log(config.log)
    check_model_is_log_end(ctx, pol)
    nonmembers = read_corpus(config.nonmembers).texts
    # the claim itself, exactly as canary-rank makes it (same items, same primary test)
    claim = canary_rank.run(ctx, canary_rank.CanaryRankConfig(secondary=()))
    plan, work = ctx.canary_set.plan, Path(config.work)
    cfs = [i.text for i in claim.items if i.role == "counterfactual"]
    try:
        result = stress_test(
            pol, ctx.backend, [c.text for c in ctx.canary_set.canaries], cfs, plan.statistic,
            plan.score, nonmembers, work, config.stress(), ctx.reference,
        )
    except ValueError as e:  # options the data cannot satisfy (too few non-members, ...)
        raise TaskError(f"repudiation stress test: {e}") from e
    written = write_stress_result(result, work / "stress.json")
    tests = [*claim.tests, *_forged_tests(result, plan.score)]
    return replace(
        claim,
        title=f"repudiation: {ctx.model_spec}",
        task="repudiation",
        task_config=asdict(config),
        tests=tuple(tests),
        notes=(*claim.notes, summary_line(written, work / "stress.json")),
    )


def _forged_tests(result: StressResult, score: str) -> list[NamedTest]:
    """The canary test on theta' of the PoR for all canaries (secondary; not a claim)."""
    return [
        NamedTest(score=f"{score} on theta' (PoR for all canaries)", primary=False,
                  result=row.canary_test)
        for row in result.rows
        if row.cls == "all-canaries" and row.canary_test is not None
    ]


TASK = Task(
    name="repudiation",
    description="stress test: forge proofs of repudiation from the model's PoL log "
    "(Kong et al.) against natural MI members and the canaries",
    config_type=RepudiationConfig,
    run=run,
)
