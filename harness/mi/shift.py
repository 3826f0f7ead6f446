"""What a membership-inference benchmark may say: the blind-baseline check and the standing
caveat that natural-text MI gives no false-positive bound."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from harness.stats.metrics import MIMetrics

NO_BOUND = (
    "Natural-text membership inference gives no false-positive bound: nobody can sample the "
    "null hypothesis (the same model, not trained on these texts), so the AUCs and TPRs here "
    "are estimates on this split, not a proof that any text was trained on (Zhang, Das, "
    "Kamath and Tramèr, \"Membership Inference Attacks Cannot Prove that a Model Was Trained "
    "On Your Data\"). For a proof with an exact false-positive bound, plant random canaries "
    "before publishing (`tdp canaries new`, then `tdp audit --task canary-rank`)."
)
SHIFT_RULE = (
    "A split is flagged as distribution-shifted when a blind baseline (never sees the model) "
    "is above chance (the lower end of its AUC interval > 0.5) and reaches the best "
    "model-based AUC within its interval (upper end >= that AUC)."
)


@dataclass(frozen=True)
class ShiftVerdict:
    """The blind baselines against the best model-based score on one split."""

    best_score: str
    best_auc: float
    best_blind: str
    blind_auc: float
    blind_ci: tuple[float, float]
    blind_above_chance: bool
    shifted: bool

    def sentence(self) -> str:
        blind = (f"the blind baseline {self.best_blind} reaches AUC {self.blind_auc:.3f} "
                 f"[{self.blind_ci[0]:.3f}, {self.blind_ci[1]:.3f}]")
        if self.shifted:
            return (f"DISTRIBUTION SHIFT: {blind} without ever seeing the model, within reach of "
                    f"the best model-based AUC {self.best_auc:.3f} ({self.best_score}). This "
                    "split is distribution-shifted; its MI numbers are not evidence of "
                    "membership.")
        if self.blind_above_chance:
            return (f"Partial shift: {blind}, above chance but short of the best model-based "
                    f"AUC {self.best_auc:.3f} ({self.best_score}); members and non-members "
                    "differ in ways visible without the model, so part of the model-based "
                    "separation may be that difference, not membership.")
        return (f"No shift detected: {blind}, an interval that includes chance (0.5); the best "
                f"model-based AUC is {self.best_auc:.3f} ({self.best_score}). Blind baselines "
                "can only find shift they can see: this does not prove the split is unshifted.")


def shift_verdict(model: Mapping[str, MIMetrics], blind: Mapping[str, MIMetrics]) -> ShiftVerdict:
    """Apply SHIFT_RULE to every blind baseline against the best model-based AUC; report the
    one that flags the split (else one above chance, else the strongest)."""
    if not model or not blind:
        raise ValueError("shift_verdict needs at least one model-based and one blind score")
    best_score = max(model, key=lambda k: model[k].auc)
    best_auc = model[best_score].auc
    verdicts = []
    for name, b in blind.items():
        lo, hi = b.ci.get("auc", (b.auc, b.auc))
        above = lo > 0.5
        verdicts.append(ShiftVerdict(best_score, best_auc, name, b.auc, (lo, hi), above,
                                     above and hi >= best_auc))
    return max(verdicts, key=lambda v: (v.shifted, v.blind_above_chance, v.blind_auc))
