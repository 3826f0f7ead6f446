"""Run one task against one model and canary set; derive the audit seed; assemble reports."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from canaries.canary_set import CanarySet, load_canary_set
from canaries.drbg import HashDRBG, derive_seed
from canaries.generators import draw_canaries
from harness.backends import Backend, load_backend
from harness.backends.base import Fingerprint
from harness.cache import ScoreCache
from harness.provenance import now, provenance
from harness.registry import TaskError, get_task
from harness.results import SCHEMA_VERSION, AuditResult, CanarySetInfo, ModelInfo, Report
from harness.stats import check_primary, holm
from harness.stats.plan import PlanViolation, needs_reference, reference_problem

SEED_LABEL = "tdp-audit-seed-v1"
SEED_DERIVATION = (
    "sha256('tdp-audit-seed-v1' | canary commitment | sha256 of the model's identity "
    "(weights or revision, tokenizer)): fixed by the data and the model, not chosen by the auditor"
)
V2_SEED_DERIVATION = (
    "protocol v2: nothing is drawn at audit time (the counterfactuals are the committed pool's, "
    "derived from the secret seed and the pinned beacon round); this seed only fixes the "
    "scoring order: sha256('tdp-scoring-order-v2' | commitment | round randomness)"
)


def audit_seed(commitment: str, fingerprint: Fingerprint) -> bytes:
    """The seed that draws the counterfactuals: anyone can recompute it; nobody can shop for it."""
    return derive_seed(SEED_LABEL, commitment, fingerprint.identity_digest())


@dataclass
class AuditContext:
    """What a task needs to run: the canaries (None for a benchmark on labelled data), the
    model(s), and where to write."""

    canary_set: CanarySet | None
    canary_path: str
    backend: Backend
    model_spec: str
    reference: Backend | None = None
    reference_spec: str | None = None
    seed_override: bytes | None = None
    seed_reason: str | None = None
    progress: bool = True
    cache: ScoreCache | None = None

    def seed(self) -> bytes:
        if self.seed_override is not None:
            return self.seed_override
        if self.canary_set.version == 2:
            from harness.protocol.pool import scoring_seed

            return scoring_seed(self.canary_set)
        return audit_seed(self.canary_set.commitment, self.backend.fingerprint())

    def seed_derivation(self) -> str:
        if self.seed_override is not None:
            return f"seed supplied by the auditor, not derived: {self.seed_reason or 'no reason given'}"
        return V2_SEED_DERIVATION if self.canary_set.version == 2 else SEED_DERIVATION

    def reference_problem(self) -> str | None:
        """Why reference-based scores are not bounds here (None: the committed reference)."""
        fp = self.reference.fingerprint().to_dict() if self.reference is not None else None
        return reference_problem(self.canary_set.plan.to_dict(), fp)

    def model_info(self) -> ModelInfo:
        return ModelInfo(spec=self.model_spec, fingerprint=self.backend.fingerprint().to_dict())

    def reference_info(self) -> ModelInfo | None:
        if self.reference is None:
            return None
        return ModelInfo(spec=self.reference_spec or "", fingerprint=self.reference.fingerprint().to_dict())

    def canary_info(self) -> CanarySetInfo | None:
        from harness.protocol.pool import check_protocol

        cs = self.canary_set
        if cs is None:
            return None
        return CanarySetInfo(
            path=self.canary_path,
            commitment=cs.commitment,
            created=cs.created,
            count=len(cs.canaries),
            spec=cs.spec.to_dict(),
            plan=cs.plan.to_dict(),
            format_version=cs.version,
            protocol=tuple(step.to_dict() for step in check_protocol(cs)),
        )

    def counterfactual_items(self, purpose: str, count: int, id_prefix: str) -> list[tuple[str, str]]:
        """(id, text) of the counterfactual items in draw order: the committed pool's (v2), or
        `count` fresh draws from the audit seed under `purpose` (v1)."""
        return counterfactual_items(self.canary_set, self.seed(), purpose, count, id_prefix, self.progress)


def counterfactual_items(
    cs: CanarySet, seed: bytes, purpose: str, count: int, id_prefix: str, progress: bool = False
) -> list[tuple[str, str]]:
    """The one rule, shared with `tdp verify`, for which items play the counterfactuals."""
    if cs.version == 2:
        if len(cs.counterfactuals) != count:
            raise TaskError(
                f"the committed pool holds {len(cs.counterfactuals)} counterfactuals, "
                f"this task needs {count}"
            )
        return [(c.id, c.text) for c in cs.counterfactuals]
    drawn = draw_canaries(
        cs.spec, HashDRBG(seed, purpose), count, exclude=cs.texts(), id_prefix=id_prefix,
        progress=progress,
    )
    return [(c.id, c.text) for c in drawn]


def build_config(config_type: type, options: dict[str, Any]) -> Any:
    """Instantiate a task's config dataclass from CLI key=value options, naming bad keys."""
    names = {f.name for f in fields(config_type)}
    unknown = set(options) - names
    if unknown:
        raise TaskError(f"unknown task options {sorted(unknown)}; allowed: {sorted(names)}")
    hints = get_type_hints(config_type)
    for key, value in options.items():
        want = hints.get(key)
        if want in (int, float, bool) and not _option_type_ok(want, value):
            raise TaskError(f"task option {key}={value!r}: expected {want.__name__}")
    try:
        return config_type(**options)
    except (TypeError, ValueError) as e:
        raise TaskError(f"bad task options {options}: {e}") from e


def _option_type_ok(want: type, value: Any) -> bool:
    """A scalar option has the type its config field declares (an int is a valid float)."""
    if isinstance(value, bool) or want is bool:
        return isinstance(value, bool) and want is bool
    return isinstance(value, (int, float)) if want is float else isinstance(value, want)


def run_audit(
    task_name: str,
    ctx: AuditContext,
    options: dict[str, Any] | None = None,
    title: str | None = None,
    role: str = "audit",
) -> AuditResult:
    task = get_task(task_name)
    config = build_config(task.config_type, options or {})
    check_committed_reference(ctx, task_name)
    seen = len(ctx.cache.stats) if ctx.cache is not None else 0
    result: AuditResult = task.run(ctx, config)
    if title is not None or role != "audit":
        result = AuditResult(**{**result.__dict__, "title": title or result.title, "role": role})
    if ctx.cache is not None and len(ctx.cache.stats) > seen:
        lines = [f"score cache {ctx.cache.root}: {s.line()}" for s in ctx.cache.stats[seen:]]
        result = AuditResult(**{**result.__dict__, "notes": (*result.notes, *lines)})
    return result


def check_committed_reference(ctx: AuditContext, task_name: str) -> None:
    """A v2 plan whose primary score needs a reference is audited only with the committed one."""
    cs = ctx.canary_set
    if cs is None:
        return
    if cs.version != 2 or task_name != cs.plan.task or not needs_reference(cs.plan.score):
        return
    problem = ctx.reference_problem()
    if problem is not None:
        raise PlanViolation(
            f"the pre-registered score {cs.plan.score!r} needs the reference model committed with "
            f"the canaries: {problem}"
        )


ADDITIONAL_NOTE = (
    "The canary set's plan pre-registers task {plan_task!r}; this {task!r} audit is an "
    "additional analysis, not the pre-registered test. Its p-values are valid on their own "
    "but carry no pre-registered claim."
)


def _label_against_plan(a: AuditResult) -> AuditResult:
    """The plan's primary test, or refusal; another task than the plan's becomes 'additional'.
    A benchmark (no canary set) has no plan and makes no claim: it passes as it is."""
    if a.canary_set is None:
        return a
    if check_primary(a.canary_set.plan, a.task, a.tests, f"audit {a.title!r}"):
        return a
    note = ADDITIONAL_NOTE.format(plan_task=a.canary_set.plan.get("task"), task=a.task)
    role = "additional" if a.role == "audit" else a.role
    notes = a.notes if note in a.notes else (*a.notes, note)
    return AuditResult(**{**a.__dict__, "role": role, "notes": notes})


def make_report(title: str, audits: list[AuditResult], notes: list[str] | None = None) -> Report:
    """Bundle audits with provenance; Holm-adjust when several audits are claims."""
    audits = [_label_against_plan(a) for a in audits]
    claims = [a for a in audits if a.role == "audit"]
    adjusted = None
    if len(claims) > 1:
        adj = iter(holm([a.primary.result.pvalue for a in claims]))
        adjusted = tuple(next(adj) if a.role == "audit" else float("nan") for a in audits)
    return Report(
        title=title,
        created=now(),
        provenance=provenance(),
        audits=tuple(audits),
        holm_adjusted=adjusted,
        notes=tuple(notes or ()),
        extra={"audit_digest": audit_digest(audits, adjusted)},
    )


def audit_digest(
    audits: list[AuditResult] | tuple[AuditResult, ...],
    holm_adjusted: Any,
    schema_version: int = SCHEMA_VERSION,
) -> str:
    """sha256 of the canonical JSON of the audits' content (integrity seal; see `tdp verify`).

    Anyone who edits a report can recompute this, so it only catches careless edits; the
    checks that follow from the data (seed derivation, regenerated counterfactuals,
    recomputed statistics, rescoring) are what an editor cannot fake.
    """
    import hashlib
    import json

    payload = {"audits": [a.to_dict(schema_version) for a in audits],
               "holm_adjusted": list(holm_adjusted) if holm_adjusted is not None else None}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def audit_from_paths(
    model: str,
    canaries: str | Path | None,
    task: str | None = None,
    reference: str | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = True,
    cache: ScoreCache | None = None,
    ray_workers: int = 0,
    ray_address: str | None = None,
) -> AuditResult:
    """Load everything named on the command line and run one audit.

    With ``ray_workers`` > 0 the model(s) are loaded by that many Ray actors (on the cluster at
    ``ray_address``, or a local Ray instance) and chunks are scored across them. A task on
    labelled data (``needs_canaries`` False, e.g. mi-benchmark) runs without canaries.
    """
    cs = load_task_canaries(canaries, task)
    task = task or cs.plan.task  # type: ignore[union-attr]
    build_config(get_task(task).config_type, options or {})  # fail before loading any model
    pool = None
    if ray_workers > 0:
        from harness.backends.ray_pool import RayPool

        pool = RayPool([model, reference] if reference else [model], ray_workers, ray_address)
        backend, ref = pool.backend(0), pool.backend(1) if reference else None
    else:
        backend, ref = load_backend(model), load_backend(reference) if reference else None
    ctx = AuditContext(
        canary_set=cs,
        canary_path=str(canaries) if canaries is not None else "",
        backend=backend,
        model_spec=model,
        reference=ref,
        reference_spec=reference,
        progress=progress,
        cache=cache,
    )
    try:
        return run_audit(task, ctx, options)
    finally:
        if pool is not None:
            pool.close()


def load_task_canaries(canaries: str | Path | None, task: str | None) -> CanarySet | None:
    """The canary set a task needs, or None for a task on labelled data; a mismatch (canaries
    for a benchmark, none for a canary task) is a one-line TaskError."""
    needs = get_task(task).needs_canaries if task is not None else True
    if canaries is None:
        if needs:
            raise TaskError(f"task {task or '(from the canary file)'!r} needs --canaries FILE")
        return None
    if not needs:
        raise TaskError(f"task {task!r} runs on labelled data and takes no canary set; drop "
                        "--canaries")
    cs = load_canary_set(canaries)
    cs.require_assigned()
    return cs
