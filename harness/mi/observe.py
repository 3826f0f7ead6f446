"""Score texts under a target model and every model of a shadow set, through the one scoring path.

Every model scores the same texts in the same seeded order (`harness.scoring.logprobs_shuffled`,
with the score cache when given, so a killed run resumes). Each shadow model is loaded from its
folder and must have the identity its manifest records: a model swapped after the set was
fingerprinted (or timestamped) is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.backends import Backend, ModelSpec, load_backend
from harness.cache import ScoreCache
from harness.mi.shadow import ShadowError, ShadowModel, ShadowSet
from harness.scoring import logprobs_shuffled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowObservations:
    """Token log-probs of the scored texts (and the population) under the target and each
    shadow model, with which shadow model trained on which scored text."""

    texts: tuple[str, ...]
    target: tuple[np.ndarray, ...]
    shadows: tuple[tuple[np.ndarray, ...], ...]  # [model][text]
    keep: np.ndarray  # (models, texts) bool
    names: tuple[str, ...]
    population_target: tuple[np.ndarray, ...] = ()
    population_shadows: tuple[tuple[np.ndarray, ...], ...] = ()

    def subset(self, models: Sequence[int]) -> ShadowObservations:
        """The same observations with only the shadow models `models` (e.g. the first n)."""
        idx = list(models)
        if not idx:
            raise ValueError("a subset needs at least one shadow model")
        return replace(
            self,
            shadows=tuple(self.shadows[i] for i in idx),
            keep=self.keep[idx],
            names=tuple(self.names[i] for i in idx),
            population_shadows=tuple(self.population_shadows[i] for i in idx)
            if self.population_shadows else (),
        )


def text_keep(shadow: ShadowSet, models: Sequence[ShadowModel], texts: Sequence[str]) -> np.ndarray:
    """keep[i, j]: model i trained on texts[j]; a text outside the pool is OUT for every model."""
    where = {t: j for j, t in enumerate(shadow.pool)}
    pool_keep = shadow.keep(tuple(models))
    out = np.zeros((len(models), len(texts)), dtype=bool)
    for j, t in enumerate(texts):
        if t in where:
            out[:, j] = pool_keep[:, where[t]]
    return out


def shadow_backend(shadow: ShadowSet, model: ShadowModel, options: dict | None = None) -> Backend:
    """The shadow model loaded with the hf backend, checked against its manifest identity."""
    folder = shadow.model_dir(model)
    if not (folder / "config.json").is_file():
        raise ShadowError(f"shadow model {model.name} is missing from {folder}")
    backend = load_backend(ModelSpec("hf", str(folder), None, dict(options or {})))
    got = backend.fingerprint().identity_digest()
    if got != model.identity:
        raise ShadowError(f"shadow model {model.name} in {folder} has identity {got[:16]}..., not "
                          f"the {str(model.identity)[:16]}... its manifest records; the folder "
                          "was changed after training")
    return backend


def observe(
    texts: Sequence[str],
    target: Backend,
    shadow: ShadowSet,
    seed: bytes,
    cache: ScoreCache | None = None,
    population: bool = True,
    model_options: dict | None = None,
) -> ShadowObservations:
    """Log-probs of `texts` (+ the set's population) under the target and every trained model."""
    models = shadow.trained
    if not models:
        raise ShadowError(f"shadow set {shadow.root} has no trained model yet")
    texts = tuple(texts)
    pop = shadow.population if population else ()
    everything = list(texts) + list(pop)
    t_lp = logprobs_shuffled(target, everything, seed, cache, "target")
    per_model = []
    for m in models:
        backend = shadow_backend(shadow, m, model_options)
        per_model.append(logprobs_shuffled(backend, everything, seed, cache, f"shadow {m.name}"))
        del backend
    n = len(texts)
    return ShadowObservations(
        texts=texts,
        target=tuple(t_lp[:n]),
        shadows=tuple(tuple(lp[:n]) for lp in per_model),
        keep=text_keep(shadow, models, texts),
        names=tuple(m.name for m in models),
        population_target=tuple(t_lp[n:]),
        population_shadows=tuple(tuple(lp[n:]) for lp in per_model) if pop else (),
    )

