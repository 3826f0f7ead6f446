"""RMIA, the relative membership-inference attack (Zarifzadeh, Liu, Shokri, "Low-Cost
High-Power Membership Inference Attacks", ICML 2024, arXiv:2312.03262).

Score of text x: the fraction of population texts z (texts no model trained on) that x
dominates, Pr_z[ LR(x, z) > gamma ] with LR(x, z) = (Pr(x|theta) / Pr(x)) / (Pr(z|theta) / Pr(z)),
where Pr(.|theta) is the target's probability of the text and Pr(.) its average over reference
(shadow) models. Online, Pr(x) averages every reference model (x is IN for half of them);
offline, only the OUT ones, corrected by the linear rule Pr(x) = ((1 + a) Pr_OUT(x) + 1 - a) / 2.
Population texts are OUT for every reference model; online they are averaged as they are,
offline with the same correction. As privacy meter does (privacytrustlab/ml_privacy_meter
modules/mia/attacks/rmia.py `run_rmia`, `tune_offline_a`, commit
0b8cb7aa0fa136566f244b8e701d435d484c58f8): gamma = 1 by default, and `a` can be tuned by
attacking one reference model with the others and keeping the a of highest AUC.

Pr(x|theta) for a causal LM is `harness.mi.signals.sequence_probability`. Two facts worth
knowing when reading RMIA's numbers here: (1) for one population shared by all texts the score
is F_Z(ratio_x / gamma), with F_Z the empirical distribution function of the population's ratios,
so it ranks texts exactly as ratio_x = Pr(x|theta) / Pr(x) does, up to ties (texts above every z
all score 1); the population sets the scale and the ties, not the order. (2) A text's geometric
mean token probability is small (about 0.01 for the models here), so offline the constant
(1 - a) / 2 dominates Pr(x) unless a is near 1, and the score approaches the target's own
probability (a loss attack): that is what tuning a guards against.
"""

from __future__ import annotations

import numpy as np

from harness.mi.estimates import check_shapes, class_means
from harness.mi.lira import AttackOutput
from harness.stats.metrics import roc_auc

A_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def _marginal_x(ref_px: np.ndarray, keep: np.ndarray, online: bool, a: float) -> np.ndarray:
    if online:
        return ref_px.mean(axis=0)
    out = class_means(ref_px, keep)[1]
    if out.rule == "absent":
        raise ValueError("offline RMIA needs OUT reference models; every one trained on every text")
    return ((1 + a) * out.mean + (1 - a)) / 2


def _marginal_z(ref_pz: np.ndarray, online: bool, a: float) -> np.ndarray:
    mean = ref_pz.mean(axis=0)
    return mean if online else ((1 + a) * mean + (1 - a)) / 2


def _probabilities(x: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(x, dtype=np.float64)
    if p.size == 0 or not np.all((p > 0) & (p <= 1)):
        raise ValueError(f"{name} must be non-empty probabilities in (0, 1]")
    return p


def rmia(target_px: np.ndarray, ref_px: np.ndarray, keep: np.ndarray, target_pz: np.ndarray,
         ref_pz: np.ndarray, online: bool = False, a: float = 1.0,
         gamma: float = 1.0) -> AttackOutput:
    """RMIA scores in [0, 1] of each text (see the module docstring for every symbol)."""
    s, k = check_shapes(_probabilities(ref_px, "reference probabilities"), keep)
    tx = _probabilities(target_px, "target probabilities")
    tz = _probabilities(target_pz, "target population probabilities")
    rz = _probabilities(ref_pz, "reference population probabilities")
    if tx.shape != (s.shape[1],) or rz.shape != (s.shape[0], tz.size):
        raise ValueError(f"shapes disagree: target {tx.shape}, references {s.shape}, population "
                         f"{tz.shape} under {rz.shape}")
    if not 0 <= a <= 1 or not gamma > 0:
        raise ValueError(f"need 0 <= a <= 1 and gamma > 0, got a={a}, gamma={gamma}")
    ratio_x = rmia_ratio(tx, s, k, online, a)
    ratio_z = np.sort(tz / _marginal_z(rz, online, a))
    # LR(x, z) > gamma  <=>  ratio_z < ratio_x / gamma (all ratios positive)
    scores = np.searchsorted(ratio_z, ratio_x / gamma, side="left") / ratio_z.size
    details = {
        "reference_models": int(s.shape[0]),
        "population": int(tz.size),
        "online": online,
        "a": None if online else a,
        "gamma": gamma,
        "texts_scoring_1": int(np.count_nonzero(scores == 1.0)),
    }
    return AttackOutput(scores, details)


def rmia_ratio(target_px: np.ndarray, ref_px: np.ndarray, keep: np.ndarray,
               online: bool = False, a: float = 1.0) -> np.ndarray:
    """ratio_x = Pr(x|theta) / Pr(x): what RMIA's score is a monotone function of for a fixed
    population (its limit without ties as the population grows)."""
    return np.asarray(target_px, dtype=np.float64) / _marginal_x(ref_px, keep, online, a)


def tune_offline_a(ref_px: np.ndarray, keep: np.ndarray, ref_pz: np.ndarray,
                   grid: tuple[float, ...] = A_GRID) -> tuple[float, dict[float, float]]:
    """The a of highest AUC when reference model 0 is attacked with the others (privacy meter's
    `tune_offline_a` pairs the target with one model; any held-out reference does)."""
    s, k = check_shapes(ref_px, keep)
    if s.shape[0] < 2:
        raise ValueError("tuning a needs >= 2 reference models (one to attack, one to use)")
    members = k[0]
    if members.all() or not members.any():
        raise ValueError("reference model 0 trained on all or none of the texts; cannot tune a")
    aucs = {}
    for a in grid:
        out = rmia(s[0], s[1:], k[1:], ref_pz[0], ref_pz[1:], online=False, a=a)
        aucs[a] = roc_auc(out.scores[members], out.scores[~members])
    best = max(grid, key=lambda a: (aucs[a], a))
    return best, aucs
