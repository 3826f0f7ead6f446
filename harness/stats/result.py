"""The typed result every test returns, labelled bound or estimate, and shared input checks."""

from __future__ import annotations

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

#: exact enumeration budget: DP cells times items, and the largest count float64 holds safely
EXACT_BUDGET = 4_000_000_000
FLOAT_ROUND_UP = 1e-12


@dataclass(frozen=True)
class TestResult:
    """One test's outcome; `pvalue` is an exact/conservative bound only if kind == 'bound'."""

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

    __test__ = False  # not a pytest class

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["assumptions"] = list(self.assumptions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TestResult:
        d = dict(d)
        d["assumptions"] = tuple(d.get("assumptions", ()))
        return cls(**d)


def _iv_scores(name: str, x: Sequence[float] | np.ndarray, min_len: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} value(s), got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite scores")
    return a

