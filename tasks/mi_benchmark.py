"""`mi-benchmark`: classical membership-inference scores on labelled members and non-members,
with blind baselines always on. Estimates only: no canary set, no p-value, no claim.

Every model-based score (loss, zlib, Min-K%, Min-K%++, reference ratio, any registered score)
gets ROC AUC, TPR at FPR <= 0.1%/1%/5% and FPR at 100% TPR with bootstrap intervals; the
blind baselines (harness.mi.blind) get the same metrics from out-of-fold predictions, and the
report says plainly when they match the model-based scores (harness.mi.shift).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from canaries.drbg import derive_seed
from harness.audit import AuditContext
from harness.backends.base import supports_vocab_stats
from harness.mi.benchmark import (
    benchmark_seed_int,
    compute_tests,
    labelled_texts,
    summarize,
    with_blind_scores,
)
from harness.mi.blind import BLIND_PREFIX, blind_baselines
from harness.mi.data import MIDataSpec, load_mi_items
from harness.mi.shift import NO_BOUND, SHIFT_RULE
from harness.provenance import now
from harness.registry import Task, TaskError
from harness.results import AuditResult, ItemScores
from harness.scoring import ScoringRequest, score_texts
from harness.stats.metrics import MI_RULE
from harness.stats.scores import SCORES

DEFAULT_SCORES = ("loss", "zlib", "min_k", "min_k_pp", "ref_ratio")
SEED_LABEL = "tdp-mi-benchmark-seed-v1"
SEED_DERIVATION = (
    "sha256('tdp-mi-benchmark-seed-v1' | sha256 of the labelled items | sha256 of the model's "
    "identity): fixes scoring order, bootstrap and cross-validation folds; chosen by the data "
    "and the model, not by the auditor"
)


@dataclass(frozen=True)
class MIBenchmarkConfig:
    """Options (`--option key=value`, or a leaderboard task's options)."""

    data: str | None = None  # one labelled source (label_field 1 = member): file, folder, hub id
    members: str | None = None  # or two sources: members ...
    nonmembers: str | None = None  # ... and non-members
    revision: str | None = None  # hub revision (pin a commit)
    split: str = "train"
    text_field: str = "text"
    label_field: str = "label"
    max_per_class: int = 0  # 0: all; else a seeded sample per class
    max_words: int = 0  # 0: as stored; else each text cut to its first max_words words
    name: str = ""  # the split's name in reports (default: the source)
    scores: tuple[str, ...] = DEFAULT_SCORES
    primary: str = "loss"  # the headline score (the shift check uses the best of all scores)
    min_k: float = 0.2
    n_bootstrap: int = 1000
    folds: int = 5  # cross-validation folds of the blind baselines
    year_cutoff: float | None = None  # the year rule's cutoff (default: chosen out of fold)

    def __post_init__(self) -> None:
        if isinstance(self.scores, str):
            object.__setattr__(self, "scores", (self.scores,))
        object.__setattr__(self, "scores", tuple(self.scores))
        unknown = [s for s in self.scores if s not in SCORES]
        if unknown:
            raise ValueError(f"unknown scores {unknown}; known: {sorted(SCORES)}")
        if self.n_bootstrap < 0 or self.folds < 2:
            raise ValueError("n_bootstrap must be >= 0 and folds >= 2")
        self.data_spec().preflight()  # fail on a bad source before any model is loaded

    def data_spec(self) -> MIDataSpec:
        keys = {f.name for f in fields(MIDataSpec)}
        return MIDataSpec(**{k: v for k, v in asdict(self).items() if k in keys})

    def source_name(self) -> str:
        if self.name:
            return self.name
        return self.data or f"{self.members} vs {self.nonmembers}"


def usable_scores(ctx: AuditContext, config: MIBenchmarkConfig) -> tuple[list[str], list[str]]:
    """(scores this model and reference can give, scores skipped)."""
    names, skipped = [], []
    for s in config.scores:
        needs = SCORES[s].needs
        if ("reference" in needs and ctx.reference is None) or (
            "vocab_stats" in needs and not supports_vocab_stats(ctx.backend)
        ):
            skipped.append(s)
        else:
            names.append(s)
    if config.primary not in names:
        raise TaskError(f"the primary score {config.primary!r} cannot be computed here "
                        f"(scores computed: {names})")
    return names, skipped


def run(ctx: AuditContext, config: MIBenchmarkConfig) -> AuditResult:
    if ctx.canary_set is not None:
        raise TaskError("mi-benchmark uses labelled data, not a canary set; run it without one")
    started = now()
    names, skipped = usable_scores(ctx, config)
    data, info = load_mi_items(config.data_spec(), config.source_name())
    seed = derive_seed(SEED_LABEL, info.sha256, ctx.backend.fingerprint().identity_digest())
    options = {"min_k": {"k": config.min_k}, "min_k_pp": {"k": config.min_k}}
    rows = score_texts([d.text for d in data], ctx.backend, ScoringRequest(tuple(names), options),
                       seed, reference=ctx.reference, cache=ctx.cache)
    items = [ItemScores(d.id, "member" if d.member else "non-member", d.text, r)
             for d, r in zip(data, rows, strict=True)]
    texts, labels = labelled_texts(items)
    int_seed = benchmark_seed_int(seed)
    blind = blind_baselines(texts, labels, config.folds, int_seed, config.year_cutoff)
    items = list(with_blind_scores(items, blind))
    all_names = names + [BLIND_PREFIX + b.name for b in blind]
    tests = compute_tests(items, all_names, config.primary, config.n_bootstrap, int_seed)
    summary = summarize(tests)
    notes = [NO_BOUND, summary.verdict.sentence(), SHIFT_RULE, f"Metrics: {MI_RULE}."]
    notes += [f"Blind baseline {b.name}: {b.description}." for b in blind]
    note = summary.model[config.primary].resolution_note()
    if note:
        notes.append(f"Resolution: {note}.")
    if skipped:
        notes.append(f"scores not computed (need a reference model or vocab stats): {skipped}")
    return AuditResult(
        title=f"mi-benchmark: {ctx.model_spec} on {info.name}",
        role="benchmark",
        task="mi-benchmark",
        task_config={**asdict(config), "scores": list(config.scores)},
        model=ctx.model_info(),
        reference=ctx.reference_info(),
        canary_set=None,
        audit_seed=seed.hex(),
        seed_derivation=SEED_DERIVATION,
        tests=tests,
        items=tuple(items),
        started=started,
        finished=now(),
        notes=tuple(notes),
        dataset=info,
    )


TASK = Task(
    name="mi-benchmark",
    description="membership-inference scores on labelled members/non-members, blind baselines "
    "always on (estimates, never a proof)",
    config_type=MIBenchmarkConfig,
    run=run,
    needs_canaries=False,
)
