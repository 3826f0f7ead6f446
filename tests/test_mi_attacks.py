"""LiRA, RMIA and reference calibration against cases whose answer is known in closed form."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import norm, spearmanr

from harness.mi.attacks import get_attack, run_attacks
from harness.mi.calibration import reference_calibration
from harness.mi.design import keep_matrix, model_members, pack_mask, unpack_mask
from harness.mi.estimates import class_means, pooled_std
from harness.mi.lira import lira_offline, lira_online
from harness.mi.observe import ShadowObservations
from harness.mi.rmia import rmia, rmia_ratio, tune_offline_a
from harness.mi.shadow import ShadowError
from harness.mi.signals import logit_confidence, mean_logprob, sequence_probability
from harness.stats.metrics import roc_auc, tpr_at_fpr

SEED = b"known-answer-seed"


def gaussian_world(texts=3000, models=16, sigma=0.5, seed=0, sigma_in=None):
    """Per-text IN/OUT Gaussians with heterogeneous difficulty; shadow samples and a target."""
    rng = np.random.default_rng(seed)
    mu_out = rng.normal(0, 3, texts)
    mu_in = mu_out + rng.uniform(0, 2, texts)
    s_in = np.full(texts, sigma) if sigma_in is None else sigma_in
    keep = keep_matrix(texts, models, SEED)
    stats = np.where(keep, rng.normal(mu_in, s_in, (models, texts)),
                     rng.normal(mu_out, sigma, (models, texts)))
    member = rng.random(texts) < 0.5
    target = np.where(member, rng.normal(mu_in, s_in), rng.normal(mu_out, sigma))
    return dict(mu_in=mu_in, mu_out=mu_out, s_in=s_in, sigma=sigma, keep=keep, stats=stats,
                member=member, target=target)


def test_design_is_balanced_complementary_and_seeded():
    keep = keep_matrix(101, 6, SEED)
    assert keep.shape == (6, 101)
    assert np.array_equal(keep[0], ~keep[1]) and np.array_equal(keep[4], ~keep[5])
    assert set(keep.sum(axis=1)) == {50, 51}
    assert set(keep.sum(axis=0)) == {3}  # every text IN for exactly half the models
    assert np.array_equal(keep, keep_matrix(101, 6, SEED))
    assert not np.array_equal(keep, keep_matrix(101, 6, b"another-seed-000"))
    assert np.array_equal(keep[3], model_members(101, 3, SEED))
    assert np.array_equal(unpack_mask(pack_mask(keep[2]), 101), keep[2])
    assert np.array_equal(keep_matrix(101, 4, SEED), keep[:4])  # prefixes are the same models


def test_online_lira_is_the_closed_form_likelihood_ratio():
    w = gaussian_world(models=400)  # 200 IN and 200 OUT samples per text
    out = lira_online(w["target"], w["stats"], w["keep"], variance="global")
    oracle = norm.logpdf(w["target"], w["mu_in"], w["sigma"]) - norm.logpdf(
        w["target"], w["mu_out"], w["sigma"])
    assert out.details["variance"] == "global"
    assert out.details["global_std"] == pytest.approx(w["sigma"], rel=0.02)
    assert spearmanr(out.scores, oracle).statistic > 0.995
    assert np.median(np.abs(out.scores - oracle)) < 0.05 * np.std(oracle)


def test_online_lira_per_text_variance_matches_unequal_gaussians():
    rng = np.random.default_rng(7)
    w = gaussian_world(models=400, sigma_in=rng.uniform(0.2, 1.0, 3000), seed=3)
    out = lira_online(w["target"], w["stats"], w["keep"])  # auto: >= 32 per class -> per text
    oracle = norm.logpdf(w["target"], w["mu_in"], w["s_in"]) - norm.logpdf(
        w["target"], w["mu_out"], w["sigma"])
    assert out.details["variance"] == "per-text"
    assert spearmanr(out.scores, oracle).statistic > 0.98


def test_offline_lira_is_the_one_sided_gaussian_tail():
    w = gaussian_world(models=400)
    out = lira_offline(w["target"], w["stats"], w["keep"], variance="global")
    oracle = -norm.logsf(w["target"], w["mu_out"], w["sigma"])
    assert spearmanr(out.scores, oracle).statistic > 0.995
    assert np.median(np.abs(out.scores - oracle) / np.maximum(oracle, 1)) < 0.05


def test_lira_with_16_models_nears_the_optimal_test_and_beats_a_global_threshold():
    w = gaussian_world(models=16)
    m, t = w["member"], w["target"]
    oracle = norm.logpdf(t, w["mu_in"], 0.5) - norm.logpdf(t, w["mu_out"], 0.5)
    online = lira_online(t, w["stats"], w["keep"]).scores
    offline = lira_offline(t, w["stats"], w["keep"]).scores
    auc = {k: roc_auc(s[m], s[~m]) for k, s in
           {"oracle": oracle, "online": online, "offline": offline, "threshold": t}.items()}
    assert auc["threshold"] < 0.65 < auc["offline"] < auc["online"] <= auc["oracle"] + 0.005
    assert auc["oracle"] - auc["online"] < 0.03
    low = {k: tpr_at_fpr(s[m], s[~m], 0.01) for k, s in
           {"online": online, "threshold": t}.items()}
    assert low["online"] > 10 * low["threshold"]


def test_two_shadow_models_give_the_equal_variance_ratio_in_closed_form():
    """One IN and one OUT sample per text: no within-class spread, so LiRA's global variance
    falls back to the std of all statistics, which only scales the closed-form ratio."""
    w = gaussian_world(texts=500, models=2)
    s, k, t = w["stats"], w["keep"], w["target"]
    mu_in = np.where(k[0], s[0], s[1])
    mu_out = np.where(k[0], s[1], s[0])
    out = lira_online(t, s, k)
    sd = np.std(s)
    assert out.details["global_std"] == pytest.approx(sd)
    expected = (mu_in - mu_out) * (2 * t - mu_in - mu_out) / (2 * sd**2)
    assert np.allclose(out.scores, expected)


def test_texts_outside_the_pool_get_the_average_in_out_gap():
    stats = np.array([[1.0, 5.0, 9.0], [0.0, 3.0, 9.0]])
    keep = np.array([[True, True, False], [False, False, False]])
    m_in, m_out = class_means(stats, keep)
    assert m_out.mean.tolist() == [0.0, 3.0, 9.0]
    assert m_in.mean.tolist() == [1.0, 5.0, 9.0 + 1.5]  # gaps 1 and 2 average 1.5
    assert (m_in.imputed, m_in.rule) == (1, "offset")
    one = class_means(np.array([[2.0, 4.0]]), np.array([[True, False]]))  # no text has both
    assert one[0].mean.tolist() == [2.0, 2.0] and one[1].mean.tolist() == [4.0, 4.0]
    assert one[0].rule == "column-mean"


def test_pooled_std_is_the_within_class_spread():
    rng = np.random.default_rng(2)
    keep = keep_matrix(2000, 8, SEED)
    stats = rng.normal(rng.normal(0, 5, 2000), 0.3, (8, 2000))
    assert pooled_std(stats, keep, class_means(stats, keep)) == pytest.approx(0.3, rel=0.03)


def _rmia_by_definition(tx, rx, keep, tz, rz, online, a, gamma):
    """RMIA spelled out pair by pair: the fraction of z with LR(x, z) > gamma."""
    def marginal(p, k):
        if online:
            return p.mean()
        out = p[~k].mean() if (~k).any() else None
        return ((1 + a) * out + 1 - a) / 2

    scores = []
    for j in range(tx.size):
        px = marginal(rx[:, j], keep[:, j])
        wins = 0
        for i in range(tz.size):
            pz = marginal(rz[:, i], np.zeros(rz.shape[0], dtype=bool))
            wins += (tx[j] / px) / (tz[i] / pz) > gamma
        scores.append(wins / tz.size)
    return np.array(scores)


@pytest.mark.parametrize("online,a,gamma", [(True, 1.0, 1.0), (False, 0.3, 1.0),
                                            (False, 1.0, 2.0), (True, 1.0, 0.5)])
def test_rmia_equals_its_pairwise_definition(online, a, gamma):
    rng = np.random.default_rng(5)
    keep = keep_matrix(40, 4, SEED)
    rx = rng.uniform(0.01, 0.9, (4, 40))
    tx, tz, rz = rng.uniform(0.01, 0.9, 40), rng.uniform(0.01, 0.9, 25), rng.uniform(
        0.01, 0.9, (4, 25))
    got = rmia(tx, rx, keep, tz, rz, online=online, a=a, gamma=gamma).scores
    assert np.allclose(got, _rmia_by_definition(tx, rx, keep, tz, rz, online, a, gamma))


def test_rmia_hand_example():
    # two reference models; text 0 is IN for model 0, OUT for model 1
    keep = np.array([[True], [False]])
    rx, tx = np.array([[0.4], [0.2]]), np.array([0.6])
    rz, tz = np.array([[0.1, 0.5], [0.3, 0.5]]), np.array([0.1, 0.9])
    # online: Pr(x) = 0.3, ratio_x = 2; Pr(z) = (0.2, 0.5), ratios (0.5, 1.8): x beats both
    assert rmia(tx, rx, keep, tz, rz, online=True).scores.tolist() == [1.0]
    # offline a=1: Pr(x) = Pr_OUT = 0.2, ratio 3; gamma 2: 3/0.5 > 2 but 3/1.8 < 2
    assert rmia(tx, rx, keep, tz, rz, online=False, a=1.0, gamma=2.0).scores.tolist() == [0.5]


def test_rmia_orders_texts_as_their_ratio_to_the_reference_average():
    rng = np.random.default_rng(9)
    keep = keep_matrix(300, 6, SEED)
    rx, tx = rng.uniform(0.01, 0.2, (6, 300)), rng.uniform(0.01, 0.2, 300)
    out = rmia(tx, rx, keep, rng.uniform(0.01, 0.2, 500), rng.uniform(0.01, 0.2, (6, 500)),
               online=True).scores
    ratio = tx / rx.mean(axis=0)
    assert np.allclose(rmia_ratio(tx, rx, keep, online=True), ratio)
    order = np.argsort(ratio)
    assert np.all(np.diff(out[order]) >= 0)  # monotone in ratio_x


def test_tuning_a_prefers_one_when_probabilities_are_small():
    """Sequence probabilities ~0.01: a < 1 drowns Pr_OUT(x) in the constant (1 - a)/2."""
    rng = np.random.default_rng(4)
    keep = keep_matrix(600, 8, SEED)
    difficulty = rng.uniform(-6, -3, 600)
    rx = np.exp(difficulty + 0.5 * keep + rng.normal(0, 0.05, (8, 600)))
    rz = np.exp(rng.uniform(-6, -3, 200) + rng.normal(0, 0.05, (8, 200)))
    a, aucs = tune_offline_a(rx, keep, rz)
    assert a == 1.0 and aucs[1.0] > 0.9 > aucs[0.0]


def test_reference_calibration_arithmetic():
    target = np.array([-2.0, -3.0])
    stats = np.array([[-2.5, -4.0], [-3.5, -3.0], [-1.0, -5.0]])
    keep = np.array([[False, False], [False, True], [True, False]])
    out = reference_calibration(target, stats, keep)
    assert out.scores.tolist() == [-2.0 + 3.0, -3.0 + 4.5]
    assert reference_calibration(target, stats, keep, "all").scores.tolist() == pytest.approx(
        [-2.0 + 7.0 / 3, -3.0 + 4.0])


def test_signals_for_known_probabilities():
    assert logit_confidence(np.log([0.5, 0.5])) == pytest.approx(0.0)
    assert logit_confidence(np.log([0.9])) == pytest.approx(np.log(9))
    assert np.isfinite(logit_confidence(np.array([0.0], dtype=np.float32)))  # p rounded to 1
    assert sequence_probability(np.log([0.1, 0.001])) == pytest.approx(0.01)
    assert mean_logprob(np.array([-1.0, -3.0])) == -2.0
    with pytest.raises(ValueError):
        logit_confidence(np.array([]))


def _observations(w, pop=False):
    lp = lambda x: np.array([np.log(x)])  # noqa: E731 - one-token texts with probability x
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731 - logit_confidence inverts this
    target = tuple(lp(sig(v)) for v in w["target"])
    shadows = tuple(tuple(lp(sig(v)) for v in row) for row in w["stats"])
    return ShadowObservations(texts=tuple(str(i) for i in range(w["target"].size)),
                              target=target, shadows=shadows, keep=w["keep"],
                              names=tuple(f"m{i}" for i in range(len(shadows))),
                              population_target=target[:50] if pop else (),
                              population_shadows=tuple(r[:50] for r in shadows) if pop else ())


def test_registry_runs_each_attack_on_observations_and_labels_estimates():
    w = gaussian_world(texts=400, models=8)
    obs = _observations(w, pop=True)
    out = run_attacks(obs, ["lira_online", "lira_offline", "rmia", "rmia_online",
                            "ref_calibration"])
    direct = lira_online(w["target"], w["stats"], w["keep"]).scores
    assert np.allclose(out["lira_online"].scores, direct, rtol=1e-6, atol=1e-6)
    assert {r.kind for r in out.values()} == {"estimate"}
    assert out["rmia"].statistic == "sequence_probability"
    assert 0.0 <= out["rmia"].details["a"] <= 1.0
    sub = obs.subset([0, 1])
    assert sub.keep.shape == (2, 400) and len(sub.population_shadows) == 2
    with pytest.raises(ShadowError, match="did you mean 'lira_online'"):
        get_attack("lira_onlin")
    with pytest.raises(ShadowError, match="population"):
        run_attacks(_observations(w), ["rmia"])


def test_population_offset_removes_a_target_level_shift():
    """A target that is better overall by c (population included) scores exactly like the
    unshifted target once every model's population median is subtracted; without it, online
    LiRA's order changes (its score moves by c * gap / s^2, text by text)."""
    w = gaussian_world(texts=600, models=8)
    rng = np.random.default_rng(11)
    pop_t, pop_s = rng.normal(0, 3, 200), rng.normal(0, 3, (8, 200))
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    lp = lambda x: np.array([np.log(x)])  # noqa: E731
    def with_pop(target, pt):
        o = _observations({**w, "target": target})
        return replace(o, population_target=tuple(lp(sig(v)) for v in pt),
                       population_shadows=tuple(tuple(lp(sig(v)) for v in row) for row in pop_s))
    opts = {"lira_online": {"offset": "population"}}
    plain = run_attacks(with_pop(w["target"], pop_t), ["lira_online"], opts)["lira_online"]
    shifted = run_attacks(with_pop(w["target"] + 1.5, pop_t + 1.5), ["lira_online"], opts)
    assert np.allclose(shifted["lira_online"].scores, plain.scores, atol=1e-6)
    assert shifted["lira_online"].details["offset"] == "population"
    raw = run_attacks(with_pop(w["target"] + 1.5, pop_t + 1.5), ["lira_online"])["lira_online"]
    assert spearmanr(raw.scores, plain.scores).statistic < 0.99
