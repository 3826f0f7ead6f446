"""End to end on a tiny model trained here: planted canaries are found, others are not."""

from __future__ import annotations

from harness.audit import audit_from_paths


def test_trained_model_rejects_h0_on_planted_canaries(tiny_world):
    result = audit_from_paths(f"hf:{tiny_world.target}", tiny_world.canary_file, progress=False)
    prim = result.primary
    assert prim.score == "loss" and prim.result.name == "rank-sum"
    assert prim.result.kind == "bound"
    assert prim.result.pvalue < 1e-6, prim.result.pvalue
    assert prim.result.pvalue >= prim.result.min_attainable_p


def test_model_that_never_saw_canaries_is_not_significant(tiny_world):
    ref = audit_from_paths(f"hf:{tiny_world.reference}", tiny_world.canary_file, progress=False)
    fresh = audit_from_paths(f"hf:{tiny_world.target}", tiny_world.never_planted_file, progress=False)
    # seeds are fixed, so these are fixed draws from the (super-)uniform null law
    assert ref.primary.result.pvalue > 0.01
    assert fresh.primary.result.pvalue > 0.01


def test_reference_ratio_is_reported_as_secondary(tiny_world):
    result = audit_from_paths(
        f"hf:{tiny_world.target}", tiny_world.canary_file, reference=f"hf:{tiny_world.reference}",
        progress=False,
    )
    secondary = {t.score: t for t in result.tests if not t.primary}
    assert "ref_ratio" in secondary and "zlib" in secondary and "min_k" in secondary
    assert "min_k_pp" in secondary  # the hf backend gives vocab_stats
    assert secondary["ref_ratio"].result.pvalue < 1e-3
    assert [t.score for t in result.tests if t.primary] == ["loss"]
