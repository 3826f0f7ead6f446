"""`mi-benchmark`: classical membership-inference scores on labelled members and non-members,
with blind baselines always on. Estimates only: no canary set, no p-value, no claim.

Every model-based score (loss, zlib, Min-K%, Min-K%++, reference ratio, any registered score)
gets ROC AUC, TPR at FPR <= 0.1%/1%/5% and FPR at 100% TPR with bootstrap intervals; the
blind baselines (harness.mi.blind) get the same metrics from out-of-fold predictions, and the
report says plainly when they match the model-based scores (harness.mi.shift).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

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
    shadow: str | None = None  # a shadow-set folder (`tdp shadow train`): adds the attacks below
    attacks: tuple[str, ...] = ("lira_offline", "rmia", "ref_calibration")
    attack_offset: str = "none"  # "population": subtract each model's population median

    def __post_init__(self) -> None:
        if isinstance(self.scores, str):
            object.__setattr__(self, "scores", (self.scores,))
        object.__setattr__(self, "scores", tuple(self.scores))
        unknown = [s for s in self.scores if s not in SCORES]
        if unknown:
            raise ValueError(f"unknown scores {unknown}; known: {sorted(SCORES)}")
        if isinstance(self.attacks, str):
            object.__setattr__(self, "attacks", (self.attacks,))
        object.__setattr__(self, "attacks", tuple(self.attacks))
        if self.shadow is not None:
            from harness.mi.attacks import get_attack

            for name in self.attacks:
                get_attack(name)  # unknown attack names fail before any model is loaded
            if not Path(self.shadow, "shadow.json").exists():
                raise ValueError(f"shadow={self.shadow!r} is not a shadow set (no shadow.json)")
        if self.attack_offset not in ("none", "population"):
            raise ValueError(
                f"attack_offset must be 'none' or 'population', got {self.attack_offset!r}"
            )
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
    attack_names, attack_notes = _with_attacks(ctx, config, texts, seed, items)
    all_names = names + attack_names + [BLIND_PREFIX + b.name for b in blind]
    tests = compute_tests(items, all_names, config.primary, config.n_bootstrap, int_seed)
    summary = summarize(tests)
    notes = [NO_BOUND, summary.verdict.sentence(), SHIFT_RULE, f"Metrics: {MI_RULE}."]
    notes += [f"Blind baseline {b.name}: {b.description}." for b in blind]
    notes += attack_notes
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


def _with_attacks(
    ctx: AuditContext, config: MIBenchmarkConfig, texts: list[str], seed: bytes, items: list
) -> tuple[list[str], list[str]]:
    """Shadow-model attacks (LiRA, RMIA, reference calibration) as item scores `attack:<name>`,
    in place; returns their score names and notes. Estimates, like every score here."""
    if config.shadow is None:
        return [], []
    from harness.mi.attacks import ATTACK_PREFIX, attack_scores
    from harness.mi.shadow import load_shadow_set

    shadow = load_shadow_set(config.shadow)
    opts = {a: {"offset": config.attack_offset} for a in config.attacks
            if a.startswith("lira") or a == "ref_calibration"}
    out = attack_scores(texts, ctx.backend, shadow, config.attacks, seed, ctx.cache, opts)
    for j, item in enumerate(items):
        extra = {ATTACK_PREFIX + n: float(a.scores[j]) for n, a in out.items()}
        items[j] = ItemScores(item.id, item.role, item.text, {**item.scores, **extra})
    notes = [f"Shadow set {config.shadow} (digest {shadow.digest()}, {len(shadow.trained)} "
             "models): attack scores are estimates and are not re-scored by `tdp verify` "
             "(that needs the shadow models); their metrics are recomputed."]
    notes += [f"Attack {n} on {a.statistic}: " + "; ".join(a.assumptions) for n, a in out.items()]
    return [ATTACK_PREFIX + n for n in out], notes


TASK = Task(
    name="mi-benchmark",
    description="membership-inference scores on labelled members/non-members, blind baselines "
    "always on (estimates, never a proof)",
    config_type=MIBenchmarkConfig,
    run=run,
    needs_canaries=False,
)
