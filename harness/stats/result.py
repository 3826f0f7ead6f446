"""The typed result every test returns, labelled bound or estimate, and shared input checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["bound", "estimate"]

EXCHANGEABILITY = (
    "canaries and counterfactuals are i.i.d. draws from one generator (distinct draws, i.e. "
    "sampling without replacement), independent of the model under H0, hence exchangeable"
)
SAME_PATH = "canaries and counterfactuals were scored through the identical backend call path"
TIES = "ties are counted against the claim, which can only make p larger"

FLOAT_ROUND_UP = 1e-12


@dataclass(frozen=True)
class TestResult:
    """One test's outcome; `pvalue` is an exact/conservative bound only if kind == 'bound'.

    `log10_pvalue` carries the value where the float cannot (a bound of 1e-400 is a float
    floored at the smallest positive float, never 0); reports print from it.
    """

    name: str
    statistic: float
    pvalue: float
    kind: Kind
    method: str
    k: int
    m: int
    min_attainable_p: float
    alternative: str = "canaries score higher (more member-like) than counterfactuals"
    assumptions: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    log10_pvalue: float | None = None
    log10_min_attainable_p: float | None = None

    __test__ = False  # not a pytest class

    def __post_init__(self) -> None:
        for name, value in (("log10_pvalue", self.pvalue), ("log10_min_attainable_p", self.min_attainable_p)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, log10_of(value))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["assumptions"] = list(self.assumptions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestResult:
        d = dict(d)
        d["assumptions"] = tuple(d.get("assumptions", ()))
        return cls(**d)


def log10_of(p: float) -> float:
    """log10 of a probability: NaN stays NaN (no p-value), 0 gives -inf (an underflow)."""
    if p != p:
        return math.nan
    return -math.inf if p <= 0 else math.log10(p)


def _iv_scores(name: str, x: Sequence[float] | np.ndarray, min_len: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} value(s), got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite scores")
    return a

