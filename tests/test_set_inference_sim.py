"""set-inference task, the plan's primary test enforced, resumable `tdp simulate` cells."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, new_canary_set, save_canary_set
from canaries.generators import words_spec
from harness import simulate
from harness.audit import AuditContext, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.cli import main
from harness.results import AuditResult, NamedTest
from harness.stats import PlanViolation
from harness.tiny import tiny_model
from harness.train import TrainConfig
from tasks.set_inference import mark_documents


def test_mark_documents_places_each_mark_once_at_a_word_boundary():
    cs, _ = new_canary_set(words_spec(4), 3, Plan(statistic="set-mean-sets"), b"m" * 32)
    docs = ["alpha beta gamma", "one two", "x"]
    marked, offs = mark_documents(docs, cs, b"s" * 32)
    for d, m, c, o in zip(docs, marked, cs.canaries, offs, strict=True):
        assert m.count(c.text) == 1 and m.replace(c.text, "", 1).split() == d.split()
        assert o in (0, len(d)) or d[o - 1].isspace()
    with pytest.raises(ValueError, match="one canary per document"):
        mark_documents(docs[:2], cs, b"s" * 32)
    with pytest.raises(ValueError, match="exactly 1 phrase"):
        mark_documents(docs, cs, b"s" * 32, mode="per-user")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.getbasetemp() / "tiny-models")


def test_set_inference_audit_and_primary_enforcement(model, tmp_path):
    cs, seed = new_canary_set(
        words_spec(5), 3, Plan(statistic="set-mean-sets", counterfactuals=9), b"u" * 32
    )
    cfile = save_canary_set(cs, tmp_path / "user.json", seed)
    ctx = AuditContext(cs, str(cfile), HFBackend(str(model)), f"hf:{model}", progress=False)
    a = run_audit("set-inference", ctx)
    assert a.task == "set-inference" and a.primary.result.name == "set-mean-sets"
    assert a.primary.result.m == 9 and sum(i.role == "counterfactual" for i in a.items) == 27
    report = make_report("ok", [a])
    from harness.verify import verify_report

    assert not [c for c in verify_report(report, cfile) if c.verdict == "FAIL"]
    # a report whose primary is another statistic is refused
    other = NamedTest(
        a.primary.score,
        True,
        a.primary.result.__class__(**{**a.primary.result.__dict__, "name": "set-mean"}),
    )
    forged = AuditResult(
        **{**a.__dict__, "tests": (other,) + tuple(t for t in a.tests if not t.primary)}
    )
    with pytest.raises(PlanViolation, match="pre-registers 'set-mean-sets'"):
        make_report("bad", [forged])
    bad_plan, s2 = new_canary_set(
        words_spec(5), 3, Plan(statistic="rank-sum", counterfactuals=9), b"w" * 32
    )
    with pytest.raises(ValueError, match="set-level plan statistic"):
        run_audit(
            "set-inference",
            AuditContext(bad_plan, "x", ctx.backend, ctx.model_spec, progress=False),
        )


def test_simulate_cell_is_resumable(tmp_path, monkeypatch):
    cfg = simulate.SimConfig(
        repeats=(2,),
        counts=(2,),
        lengths=(4,),
        counterfactuals=10,
        corpus_bytes=15_000,
        vocab_size=300,
        train=TrainConfig(n_layer=1, n_embd=32, n_head=2, epochs=1),
    )
    rows = simulate.run_power(cfg, tmp_path)
    assert rows[0]["key"] == "words-L4-K2-r2" and 0 < rows[0]["planted"]["loss"]["set_p"] <= 1
    assert (tmp_path / "power.png").exists() and (tmp_path / "power.md").exists()

    def boom(*a, **k):
        raise AssertionError("a finished cell was retrained")

    monkeypatch.setattr(simulate, "train_causal_lm", boom)
    again = simulate.run_power(cfg, tmp_path)
    assert again == json.loads(json.dumps(rows))
    res = CliRunner().invoke(main, ["simulate", "--kinds", "bogus"])
    assert res.exit_code != 0 and "unknown kinds" in res.output
