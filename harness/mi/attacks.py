"""Shadow-model attacks by name: what a task (e.g. `mi-benchmark`) or a leaderboard row requests.

The API a task needs is two calls::

    from harness.mi.attacks import attack_scores
    out = attack_scores(texts, ctx.backend, "path/to/shadow-set", ["lira_online", "rmia"],
                        seed=ctx.seed(), cache=ctx.cache)
    out["lira_online"].scores        # one float per text, larger = more member-like

so a leaderboard row reads, e.g., `task = "mi-benchmark"` with options
`shadow_set = "shadows/docstrings-16"` and `attacks = ["lira_online", "lira_offline", "rmia",
"ref_calibration"]`. Options per attack (`options={"lira_online": {"offset": "population"}}`):
lira_*: variance "auto" | "global" | "per-text", offset "none" | "population"; rmia: a "tune" |
a float in [0, 1], gamma > 0; rmia_online: gamma; ref_calibration: use "out" | "all", offset.
Online LiRA needs the scored texts in the shadow set's pool (each is IN for half the models); a
text outside it is OUT everywhere and its IN mean is estimated (`harness.mi.estimates`).
Every score is an estimate (`AttackScores.kind == "estimate"`): natural-text
membership inference gives evidence, never a false-positive bound. `ATTACKS` lists each attack's
statistic and assumptions; `get_attack` answers unknown names with a "did you mean".
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from harness.backends import Backend
from harness.cache import ScoreCache
from harness.mi.calibration import reference_calibration
from harness.mi.lira import AttackOutput, lira_offline, lira_online
from harness.mi.observe import ShadowObservations, observe
from harness.mi.rmia import rmia, tune_offline_a
from harness.mi.shadow import ShadowError, ShadowSet, load_shadow_set
from harness.mi.signals import statistic_matrix, statistic_vector

SHADOWS_LIKE_TARGET = (
    "the shadow models are trained like the target (architecture, recipe, data distribution); "
    "a mismatch costs power"
)
ESTIMATE = "an estimate: membership inference on natural text gives evidence, never a bound"
#: option `offset="population"` of lira_online, lira_offline and ref_calibration: every model's
#: statistic is shifted by its median over the population texts, which no model trained on, so
#: a model-level shift (one training run converging better than another) is removed before the
#: per-text comparison. Online LiRA needs it most: its score (mu_in - mu_out)(2 phi - mu_in -
#: mu_out) / 2 s^2 moves by c (mu_in - mu_out) / s^2 when the target is shifted by c, which
#: reorders texts by their IN-OUT gap; offline scores shift by one constant per target.
MODEL_OFFSET = ("with offset='population': population texts are non-members of the target and "
                "of every shadow model, so a model's median statistic on them measures its "
                "overall shift, not membership")


@dataclass(frozen=True)
class Attack:
    """A named attack: the per-text statistic it models, its assumptions, and how it scores."""

    name: str
    statistic: str
    doc: str
    assumptions: tuple[str, ...]
    run: Callable[[ShadowObservations, dict[str, Any]], AttackOutput]
    needs_population: bool = False


@dataclass(frozen=True)
class AttackScores:
    """One attack's scores on the observed texts (larger = more member-like)."""

    attack: str
    statistic: str
    scores: np.ndarray
    assumptions: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)
    kind: Literal["estimate"] = "estimate"

    def to_dict(self) -> dict[str, Any]:
        return {"attack": self.attack, "statistic": self.statistic, "kind": self.kind,
                "assumptions": list(self.assumptions), "details": self.details,
                "scores": [float(x) for x in self.scores]}


def _matrices(obs: ShadowObservations, statistic: str) -> tuple[np.ndarray, np.ndarray]:
    return statistic_vector(statistic, obs.target), statistic_matrix(statistic, obs.shadows)


def _offset(obs: ShadowObservations, statistic: str, opts: dict[str, Any],
            details: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The statistics, each model's shifted by its median on the population when
    `offset="population"` (see MODEL_OFFSET)."""
    t, s = _matrices(obs, statistic)
    how = opts.get("offset", "none")
    if how == "none":
        return t, s
    if how != "population":
        raise ShadowError(f"offset must be 'none' or 'population', got {how!r}")
    if not obs.population_target:
        raise ShadowError("offset='population' needs the shadow set's population texts")
    t0 = float(np.median(statistic_vector(statistic, obs.population_target)))
    s0 = np.median(statistic_matrix(statistic, obs.population_shadows), axis=1)
    details.update({"offset": "population", "target_offset": t0,
                    "shadow_offsets": [float(x) for x in s0]})
    return t - t0, s - s0[:, None]


def _lira(online: bool) -> Callable[[ShadowObservations, dict[str, Any]], AttackOutput]:
    def run(obs: ShadowObservations, opts: dict[str, Any]) -> AttackOutput:
        extra: dict[str, Any] = {}
        t, s = _offset(obs, "logit_confidence", opts, extra)
        fn = lira_online if online else lira_offline
        out = fn(t, s, obs.keep, opts.get("variance", "auto"))
        out.details.update(extra)
        return out

    return run


def _rmia(online: bool) -> Callable[[ShadowObservations, dict[str, Any]], AttackOutput]:
    def run(obs: ShadowObservations, opts: dict[str, Any]) -> AttackOutput:
        if not obs.population_target:
            raise ShadowError("RMIA needs population texts (texts no shadow model trained on): "
                              "give the shadow set a population (`tdp shadow train --population`)")
        tx, rx = _matrices(obs, "sequence_probability")
        tz = statistic_vector("sequence_probability", obs.population_target)
        rz = statistic_matrix("sequence_probability", obs.population_shadows)
        gamma = float(opts.get("gamma", 1.0))
        if online:
            return rmia(tx, rx, obs.keep, tz, rz, online=True, gamma=gamma)
        a, aucs = opts.get("a", "tune"), None
        if a == "tune":
            a, aucs = tune_offline_a(rx, obs.keep, rz)
        out = rmia(tx, rx, obs.keep, tz, rz, online=False, a=float(a), gamma=gamma)
        if aucs is not None:
            out.details["a_tuning_auc"] = {str(k): v for k, v in aucs.items()}
        return out

    return run


def _calibration(obs: ShadowObservations, opts: dict[str, Any]) -> AttackOutput:
    extra: dict[str, Any] = {}
    t, s = _offset(obs, "mean_logprob", opts, extra)
    out = reference_calibration(t, s, obs.keep, opts.get("use", "out"))
    out.details.update(extra)
    return out


#: item-score prefix of attack scores in a report (`attack:lira_offline`); like blind baselines
#: they are not `SCORES` of one model, so verify recomputes their metrics but cannot re-score them
ATTACK_PREFIX = "attack:"

ATTACKS: dict[str, Attack] = {a.name: a for a in (
    Attack("lira_online", "logit_confidence",
           "LiRA online: log-likelihood ratio of per-text IN/OUT Gaussians (Carlini et al. 2022)",
           ("the statistic is Gaussian over training runs, IN and OUT",
            "a member of the target was trained on as often as a shadow model's members",
            SHADOWS_LIKE_TARGET, MODEL_OFFSET, ESTIMATE), _lira(True)),
    Attack("lira_offline", "logit_confidence",
           "LiRA offline: -log one-sided p-value of the target under the per-text OUT Gaussian",
           ("the statistic is Gaussian over training runs that leave the text out",
            SHADOWS_LIKE_TARGET, MODEL_OFFSET, ESTIMATE), _lira(False)),
    Attack("rmia", "sequence_probability",
           "RMIA offline: fraction of population texts dominated, Pr(x) from OUT references "
           "with the linear correction a (tuned on a reference model unless given)",
           ("population texts are non-members of the target and of every reference model",
            "Pr(x) is approximated from OUT references by ((1+a) Pr_OUT(x) + 1 - a) / 2",
            SHADOWS_LIKE_TARGET, ESTIMATE), _rmia(False), needs_population=True),
    Attack("rmia_online", "sequence_probability",
           "RMIA online: fraction of population texts dominated, Pr(x) averaged over IN and OUT "
           "references (Zarifzadeh et al. 2024)",
           ("population texts are non-members of the target and of every reference model",
            SHADOWS_LIKE_TARGET, ESTIMATE), _rmia(True), needs_population=True),
    Attack("ref_calibration", "mean_logprob",
           "reference calibration: target mean log-prob minus its mean over OUT reference models "
           "(with one reference that never saw the pool: ref_ratio)",
           ("the references' mean log-prob estimates how hard the text is without training on it",
            MODEL_OFFSET, ESTIMATE), _calibration),
)}


def get_attack(name: str) -> Attack:
    """The attack called `name`; an unknown name gets a 'did you mean'."""
    if name not in ATTACKS:
        close = difflib.get_close_matches(name, list(ATTACKS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ShadowError(f"unknown attack {name!r}{hint} (known: {', '.join(ATTACKS)})")
    return ATTACKS[name]


def run_attacks(obs: ShadowObservations, names: Sequence[str],
                options: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, AttackScores]:
    """Every named attack on already observed log-probs (pure: no model is touched)."""
    out = {}
    for name in names:
        attack = get_attack(name)
        try:
            result = attack.run(obs, dict((options or {}).get(name, {})))
        except ValueError as e:  # the observations cannot support this attack
            raise ShadowError(f"attack {name}: {e}") from e
        out[name] = AttackScores(name, attack.statistic, result.scores, attack.assumptions,
                                 result.details)
    return out


def attack_scores(
    texts: Sequence[str],
    target: Backend,
    shadow_set: ShadowSet | str | Path,
    names: Sequence[str],
    seed: bytes,
    cache: ScoreCache | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, AttackScores]:
    """Score `texts` under the target and the shadow set's models, then run each named attack."""
    attacks = [get_attack(n) for n in names]  # unknown names fail before any scoring
    shadow = shadow_set if isinstance(shadow_set, ShadowSet) else load_shadow_set(shadow_set)
    population = any(a.needs_population for a in attacks) or any(
        dict(o).get("offset", "none") != "none" for o in (options or {}).values())
    obs = observe(texts, target, shadow, seed, cache, population=population)
    return run_attacks(obs, names, options)
