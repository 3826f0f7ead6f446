"""`tdp audit --task repudiation` end to end on a tiny model trained here with PoL logging, and
the line a canary-rank report carries when it links the stress test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from canaries.canary_set import Plan, new_canary_set, save_canary_set
    from canaries.drbg import derive_seed
    from canaries.generators import words_spec
    from canaries.inject import inject_texts
    from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm, train_tokenizer
    from harness.train.pol import PoLOptions

    root = tmp_path_factory.mktemp("repudiation")
    docs = stdlib_docstrings(max_bytes=12_000)
    members, nonmembers = docs[0::2], docs[1::2]
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=10, alpha=0.01)
    cs, seed = new_canary_set(words_spec(4), 2, plan, derive_seed("task-repud", "1"))
    save_canary_set(cs, root / "canaries.json", seed)
    injected, _ = inject_texts(members, cs, 3, derive_seed("task-repud-inject", "1"))
    (root / "non.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in nonmembers))
    tok = train_tokenizer(members, 300)
    cfg = TrainConfig(n_layer=1, n_embd=16, n_head=2, block_size=32, epochs=2, batch_size=8,
                      lr=5e-3, warmup_steps=3)
    train_causal_lm(injected, tok, cfg, root / "model", progress=False,
                    pol=PoLOptions(root / "model" / "pol", checkpoint_every=6))
    return root


def _audit(root: Path, out: str, *extra: str, model: Path | None = None):  # noqa: ANN202
    args = ["audit", "--model", f"hf:{model or root / 'model'},dtype=float32,device=cpu",
            "--canaries", str(root / "canaries.json"), "-o", str(root / out), "--no-progress",
            "--no-cache", *extra]
    return CliRunner().invoke(main, args)


def _options(root: Path) -> list[str]:
    opts = {"log": root / "model" / "pol", "nonmembers": root / "non.jsonl",
            "work": root / "work", "natural": 2, "mu": 2, "calibrate": 1, "common": 2}
    return [x for k, v in opts.items() for x in ("--option", f"{k}={v}")]


def test_stress_test_task_reports_per_class(world):
    r = _audit(world, "report", "--task", "repudiation", *_options(world))
    assert r.exit_code == 0, r.output
    audit = json.loads((world / "report" / "report.json").read_text())["audits"][0]
    assert audit["task"] == "repudiation" and audit["role"] == "additional"
    assert [t["primary"] for t in audit["tests"]] == [True, False]  # θ's test, then θ' (all)
    assert any(n.startswith("repudiation stress test:") for n in audit["notes"])
    stress = json.loads((world / "work" / "stress.json").read_text())
    assert stress["honest_valid"] and stress["honest_max_error"] == 0.0
    assert stress["tolerance"] > 0
    classes = [row["cls"] for row in stress["rows"]]
    assert classes.count("canary") == 2 and classes.count("all-canaries") == 1
    assert classes.count("natural") == min(2, stress["natural_called_members"])
    for row in stress["rows"]:
        assert row["forged_steps"] > 0 and row["replayed_segments"] > 0
        assert row["valid"] == (row["failed_segments"] == 0 and row["integrity_problems"] == 0)
        assert 0 <= row["diff_flips"] <= row["targets"] and row["distance"] > 0
        assert (row["canary_log10_p"] is None) == (row["cls"] == "natural")
    assert set(stress["summary"]) <= {"natural", "canary", "all-canaries"}


def test_canary_rank_report_can_link_the_stress_test(world):
    if not (world / "work" / "stress.json").exists():
        pytest.skip("needs the stress test's result")
    plain = _audit(world, "plain")
    linked = _audit(world, "linked", "--option", f"repudiation={world / 'work' / 'stress.json'}")
    assert plain.exit_code == 0 and linked.exit_code == 0, linked.output
    a = json.loads((world / "plain" / "report.json").read_text())["audits"][0]
    b = json.loads((world / "linked" / "report.json").read_text())["audits"][0]
    assert a["tests"] == b["tests"]  # the claim is unchanged
    extra = [n for n in b["notes"] if n not in a["notes"]]
    assert len(extra) == 1 and extra[0].startswith("repudiation stress test:")


def test_the_audited_model_must_be_the_logs(world, tmp_path):
    from tests.tiny_lm import build_tiny_lm

    other = build_tiny_lm(tmp_path / "other")
    r = _audit(world, "wrong", "--task", "repudiation", *_options(world), model=other)
    assert r.exit_code == 1 and "not the one the PoL log ends with" in r.output
    r = _audit(world, "nolog", "--task", "repudiation", "--option", "work=x")
    assert r.exit_code == 1 and "needs --option log=PATH" in r.output
