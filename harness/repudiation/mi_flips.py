"""Membership predictions before and after a repudiation (Kong et al.'s Diff/Common/Validation).

The attack is a population threshold attack run on each model on its own (as an attacker
would run it): a score (larger = more member-like) above the (1 - fpr) quantile of known
non-members' scores means "member". A prediction *flips* when the original model and the
forged model disagree. Diff: on the targets (members of theta, not of theta'); Common: on
other members of both; Validation: on non-members of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def threshold_at_fpr(nonmember_scores: Sequence[float], fpr: float) -> float:
    """The smallest threshold calling at most a fraction `fpr` of the non-members members."""
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    s = np.sort(np.asarray(nonmember_scores, dtype=float))
    if s.size == 0:
        raise ValueError("no non-member scores to set the threshold on")
    allowed = int(np.floor(fpr * s.size))  # non-members allowed above the threshold
    return float(s[s.size - allowed - 1])


def predict(scores: Sequence[float], threshold: float) -> np.ndarray:
    """Member (True) where the score is strictly above the threshold."""
    return np.asarray(scores, dtype=float) > threshold


@dataclass(frozen=True)
class Flips:
    """How many of `n` predictions differ between the original and the forged model."""

    flipped: int
    n: int

    @property
    def rate(self) -> float:
        return self.flipped / self.n if self.n else float("nan")


def flips(before: np.ndarray, after: np.ndarray) -> Flips:
    before, after = np.asarray(before, bool), np.asarray(after, bool)
    return Flips(int(np.sum(before != after)), int(before.size))
