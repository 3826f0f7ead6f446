"""The texts the stress test scores on every model, and the MI predictions made from them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from canaries.drbg import HashDRBG, derive_seed
from harness.repudiation.mi_flips import predict, threshold_at_fpr
from harness.repudiation.targets import log_tokenizer, member_documents
from harness.scoring import ScoringRequest, score_texts
from harness.stats import TestResult, run_statistic
from harness.stats.scores import ScoreError, ScoreInputs, compute_score, get_score
from harness.train.pol import PoLLog

SCORING_SEED = derive_seed("tdp-stress-scoring", "v1")


@dataclass(frozen=True)
class Population:
    """Member documents (decoded from the log, none holding a canary), non-members split into a
    threshold set and a validation set, the canaries and their counterfactuals."""

    members: tuple[str, ...]
    threshold_set: tuple[str, ...]
    validation: tuple[str, ...]
    canaries: tuple[str, ...]
    counterfactuals: tuple[str, ...]

    @classmethod
    def build(
        cls, pol: PoLLog, canaries: Sequence[str], counterfactuals: Sequence[str],
        nonmembers: Sequence[str], config: Any,
    ) -> Population:
        tok = log_tokenizer(pol)
        members = [
            t for _, t in member_documents(pol, tok)
            if not any(c in t for c in canaries)
            and t.strip()
            and tok.decode(tok.encode(t, add_special_tokens=False),
                           clean_up_tokenization_spaces=False) == t
        ]
        if len(nonmembers) < 4:
            raise ValueError(f"{len(nonmembers)} non-member documents: too few to set a threshold")
        return cls(tuple(members), tuple(nonmembers[::2]), tuple(nonmembers[1::2]),
                   tuple(canaries), tuple(counterfactuals))

    def texts(self) -> list[str]:
        return [*self.members, *self.threshold_set, *self.validation, *self.canaries,
                *self.counterfactuals]

    def natural_targets(self, base: ModelScores, config: Any) -> list[int]:
        """`config.natural` members the MI attack calls members on theta, drawn at random."""
        called = [i for i, m in enumerate(base.natural_member) if m]
        HashDRBG(derive_seed("tdp-stress", str(config.seed)), "natural").shuffle(called)
        return sorted(called[: config.natural])  # none called: no natural class


@dataclass(frozen=True)
class ModelScores:
    """One model's scores on the population, and the MI attack's predictions from them."""

    pop: Population
    scores: dict[str, np.ndarray]  # score name -> scores in `pop.texts()` order
    mi_score: str
    fpr: float

    def _part(self, name: str, part: str) -> np.ndarray:
        p = self.pop
        sizes = [("members", len(p.members)), ("threshold", len(p.threshold_set)),
                 ("validation", len(p.validation)), ("canaries", len(p.canaries)),
                 ("counterfactuals", len(p.counterfactuals))]
        start = 0
        for label, n in sizes:
            if label == part:
                return self.scores[name][start : start + n]
            start += n
        raise KeyError(part)

    def _natural_threshold(self) -> float:
        return threshold_at_fpr(self._part(self.mi_score, "threshold"), self.fpr)

    @property
    def natural_member(self) -> np.ndarray:
        return predict(self._part(self.mi_score, "members"), self._natural_threshold())

    @property
    def validation_member(self) -> np.ndarray:
        return predict(self._part(self.mi_score, "validation"), self._natural_threshold())

    @property
    def canary_member(self) -> np.ndarray:
        t = threshold_at_fpr(self._part(self.mi_score, "counterfactuals"), self.fpr)
        return predict(self._part(self.mi_score, "canaries"), t)

    def diff(self, other: ModelScores, natural: Sequence[int], canaries: Sequence[int]) -> int:
        """Targets whose prediction differs between this model and `other` (Diff)."""
        nat = int(np.sum(self.natural_member[natural] != other.natural_member[natural]))
        return nat + int(np.sum(self.canary_member[canaries] != other.canary_member[canaries]))

    def member_flips(self, other: ModelScores, members: Sequence[int]) -> int:
        return int(np.sum(self.natural_member[members] != other.natural_member[members]))

    def called_member_flips(
        self, other: ModelScores, skip_natural: Sequence[int], skip_canaries: Sequence[int]
    ) -> tuple[int, int]:
        """(flips, n) over every member called a member on this model, outside the PoR's
        group: the control for Diff, selected the way the targets were."""
        nat = [i for i in np.flatnonzero(self.natural_member) if i not in set(skip_natural)]
        can = [i for i in np.flatnonzero(self.canary_member) if i not in set(skip_canaries)]
        flipped = self.diff(other, nat, can)
        return flipped, len(nat) + len(can)

    def validation_flips(self, other: ModelScores, rows: Sequence[int]) -> int:
        return int(np.sum(self.validation_member[rows] != other.validation_member[rows]))

    def canary_scores(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self._part(name, "canaries"), self._part(name, "counterfactuals")


def windowed_logprobs(backend: Any, texts: Sequence[str]) -> list[np.ndarray]:
    """Per-token log-probs of documents longer than the context: cut into windows of the
    context length (each after the scoring prefix), scored by the backend, joined again."""
    width = int(backend.max_length) - 1
    windows, owner = [], []
    for n, text in enumerate(texts):
        body = list(backend.tokenizer.encode(text, add_special_tokens=False))
        for i in range(0, len(body), width):
            windows.append([backend.prefix_id, *body[i : i + width]])
            owner.append(n)
    scored = backend.token_logprobs_ids(windows)
    out: list[list[np.ndarray]] = [[] for _ in texts]
    for n, lp in zip(owner, scored, strict=True):
        out[n].append(np.asarray(lp))
    return [np.concatenate(parts) for parts in out]


def score_model(
    backend: Any, pop: Population, names: Sequence[str], reference: Any, fpr: float
) -> ModelScores:
    """Score the population on `backend`: canaries and counterfactuals through the harness's
    one scoring path (the numbers canary-rank reports); documents window by window, the MI
    score computed from their joined log-probs (it must need log-probs only)."""
    unique = tuple(dict.fromkeys(names))
    short = [*pop.canaries, *pop.counterfactuals]
    rows = score_texts(short, backend, ScoringRequest(unique, {}), SCORING_SEED, reference)
    docs = [*pop.members, *pop.threshold_set, *pop.validation]
    needs = get_score(names[0]).needs
    if "vocab_stats" in needs:
        raise ScoreError(f"MI score {names[0]!r} needs vocabulary statistics; use a log-prob score")
    lp = windowed_logprobs(backend, docs)
    ref = windowed_logprobs(reference, docs) if "reference" in needs else [None] * len(docs)
    doc_scores = [
        compute_score(names[0], ScoreInputs(t, a, r)) for t, a, r in zip(docs, lp, ref, strict=True)
    ]
    scores = {}
    for n in unique:
        tail = [r[n] for r in rows]
        head = doc_scores if n == names[0] else [float("nan")] * len(docs)
        scores[n] = np.array([*head, *tail], dtype=float)
    return ModelScores(pop, scores, names[0], fpr)


def canary_test(scores: ModelScores, statistic: str, score: str) -> TestResult:
    """The canary set's pre-registered test, computed on this model's scores."""
    canary, cf = scores.canary_scores(score)
    return run_statistic(statistic, canary, cf)
