"""Blind baselines: membership "attacks" that never see the model (Das, Zhang and Tramèr,
"Blind Baselines Beat Membership Inference Attacks for Foundation Models", 2024).

If a classifier that reads only the texts separates members from non-members as well as the
model-based scores do, the split is distribution-shifted and the model-based numbers say
nothing about membership. Both baselines give one out-of-fold "member-likeness" score per item
(larger = member), so they go through the same ROC metrics as model scores:

- `bag-of-words`: TF-IDF word counts -> logistic regression (scikit-learn), its inverse
  regularisation C chosen by an inner cross-validation, scored out of fold with stratified
  k-fold cross-validation (every item is scored by a classifier that never saw its label).
- `year-rule`: the date-detection rule of the authors' `date_detection.py` @ a91d7f01
  (ethz-spylab/Blind-MIA): take the largest 4-digit number in the text; 1.0 ("member") if it
  is below a cutoff year, 0.0 if not, 0.5 when the text has none. The cutoff is chosen on the
  training folds (the value maximising their AUC) unless given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: as Blind-MIA's date_detection_basic: any 4-digit number counts as a year
YEAR = re.compile(r"[0-9][0-9][0-9][0-9]")
BLIND_PREFIX = "blind:"
#: inverse regularisation strengths the inner cross-validation chooses from
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class BlindScores:
    """Out-of-fold member-likeness of every item under one blind baseline."""

    name: str
    description: str
    scores: np.ndarray
    details: dict[str, Any]


def _folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    k = min(folds, int(labels.sum()), int((~labels).sum()))
    if k < 2:
        raise ValueError("blind baselines need at least 2 members and 2 non-members")
    split = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(split.split(np.zeros(labels.size), labels))


def bag_of_words(texts: Sequence[str], labels: Sequence[bool], folds: int = 5,
                 seed: int = 0) -> BlindScores:
    """Out-of-fold P(member) from a TF-IDF + logistic-regression classifier."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    y = np.asarray(labels, dtype=bool)
    out = np.empty(y.size)
    splits = _folds(y, folds, seed)
    for train, test in splits:
        inner = max(2, min(3, int(y[train].sum()), int((~y[train]).sum())))
        clf = GridSearchCV(
            make_pipeline(TfidfVectorizer(sublinear_tf=True), LogisticRegression(max_iter=2000)),
            {"logisticregression__C": C_GRID},
            cv=inner,
            scoring="roc_auc",
        )
        clf.fit([texts[i] for i in train], y[train])
        out[test] = clf.predict_proba([texts[i] for i in test])[:, 1]
    return BlindScores(
        "bag-of-words",
        f"TF-IDF + logistic regression (C by inner {inner}-fold CV), out-of-fold scores from "
        f"stratified {len(splits)}-fold cross-validation (seed {seed})",
        out,
        {"folds": len(splits), "seed": seed},
    )


def max_year(text: str) -> int | None:
    """The largest 4-digit number in the text (None if there is none)."""
    found = YEAR.findall(text)
    return max(int(y) for y in found) if found else None


def year_rule(years: Sequence[int | None], cutoff: float) -> np.ndarray:
    """1.0 if the largest year is below `cutoff`, 0.0 if not, 0.5 without a year."""
    return np.array([0.5 if y is None else float(y < cutoff) for y in years])


def _best_cutoff(years: list[int | None], y: np.ndarray) -> float:
    """The cutoff (a year seen, or +inf) whose rule has the largest AUC on these items."""
    from harness.stats.metrics import roc_auc

    best, best_auc = np.inf, -1.0
    for c in sorted({v for v in years if v is not None}) + [np.inf]:
        s = year_rule(years, c)
        a = roc_auc(s[y], s[~y]) if y.any() and (~y).any() else 0.5
        if a > best_auc:
            best, best_auc = float(c), a
    return best


def year_mentions(texts: Sequence[str], labels: Sequence[bool], folds: int = 5, seed: int = 0,
                  cutoff: float | None = None) -> BlindScores:
    """The date-detection rule; its cutoff chosen out of fold unless given."""
    y = np.asarray(labels, dtype=bool)
    years = [max_year(t) for t in texts]
    with_year = sum(v is not None for v in years)
    if cutoff is not None:
        how = f"cutoff {cutoff:g} given"
        return BlindScores("year-rule", _year_description(how), year_rule(years, cutoff),
                           {"cutoff": cutoff, "with_year": with_year})
    out = np.empty(y.size)
    chosen = []
    for train, test in _folds(y, folds, seed):
        c = _best_cutoff([years[i] for i in train], y[train])
        chosen.append(c)
        out[test] = year_rule([years[i] for i in test], c)
    how = f"cutoff chosen on the training folds of {len(chosen)}-fold CV (seed {seed})"
    return BlindScores("year-rule", _year_description(how), out,
                       {"cutoffs": [str(c) for c in chosen], "with_year": with_year})


def _year_description(how: str) -> str:
    return ("largest 4-digit number below the cutoff year -> member (1), else non-member (0), "
            f"no number -> 0.5 (Das et al.'s date detection); {how}")


def blind_baselines(texts: Sequence[str], labels: Sequence[bool], folds: int = 5, seed: int = 0,
                    year_cutoff: float | None = None) -> list[BlindScores]:
    """Every blind baseline on one split, in a fixed order."""
    return [bag_of_words(texts, labels, folds, seed),
            year_mentions(texts, labels, folds, seed, year_cutoff)]
