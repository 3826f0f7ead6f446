"""`tdp simulate`: one real cell, resumability (finished cells are not retrained), FPR@100%TPR."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import harness.simulate as simulate
from harness.simulate import SimulateConfig, Simulation, fpr_at_full_tpr, write_summary
from harness.train import TrainConfig

SMALL = SimulateConfig(
    repeats=(12,),
    lengths=(5,),
    kinds=("words",),
    canaries=(4,),
    groups=2,
    counterfactuals=40,
    out_world_users=20,
    alpha=0.05,
    scores=("loss", "zlib"),
    corpus_bytes=15_000,
    vocab_size=300,
    train=TrainConfig(
        n_layer=1,
        n_embd=32,
        n_head=2,
        block_size=32,
        epochs=4,
        batch_size=16,
        lr=5e-3,
        warmup_steps=2,
    ),
)


def test_fpr_at_full_tpr_matches_definition():
    member = np.array([3.0, 5.0, 4.0])
    non = np.array([1.0, 3.0, 3.5, 6.0, 0.0])
    assert (
        fpr_at_full_tpr(member, non) == 3 / 5
    )  # 3.0 (tie counts), 3.5, 6.0 reach the lowest member
    assert fpr_at_full_tpr(np.array([10.0]), non) == 0.0


def test_simulate_runs_and_resumes_without_retraining(tmp_path, monkeypatch):
    out, work = tmp_path / "out", tmp_path / "work"
    first = Simulation(SMALL, out, work).run(log=lambda m: None)
    (res,) = first
    assert set(res.pvalues) == {"rank-sum", "set-mean"}
    for test in res.pvalues.values():
        for ps in test.values():
            assert len(ps) == 2 and all(0 < p <= 1 for p in ps)
    assert res.pvalues["set-mean"]["loss"][0] >= 1 / 21

    def no_training(*a, **k):
        raise AssertionError("a finished cell was retrained")

    monkeypatch.setattr(simulate, "train_causal_lm", no_training)
    logs: list[str] = []
    again = Simulation(SMALL, out, work).run(log=logs.append)
    assert again == first and "loaded" in logs[0]
    write_summary(again, SMALL, out, "tdp simulate (test)")
    assert (out / "power.png").stat().st_size > 1000
    assert "r=12, L=5, words, K=4" in (out / "table.md").read_text()
    assert json.loads((out / "summary.json").read_text())["cells"][0]["cell"]["repeat"] == 12
    # a new grid point in the same run trains only the new cell (here: refused by the patch)
    with pytest.raises(AssertionError, match="retrained"):
        Simulation(replace(SMALL, repeats=(12, 1)), out, work).run(log=lambda m: None)
    # other fixed settings must not be mixed into the same output folder
    with pytest.raises(ValueError, match="other fixed settings"):
        Simulation(replace(SMALL, counterfactuals=41), out, work).run(log=lambda m: None)
