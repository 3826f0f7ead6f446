"""`set-inference` task on tiny trained models: planted marks are found, a null model is not."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from canaries.canary_set import (
    CanarySet,
    Plan,
    canary_set_from_dict,
    load_canary_set,
    save_canary_set,
)
from canaries.drbg import derive_seed
from canaries.marking import mark_documents
from harness.audit import AuditContext, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.cli import main
from harness.registry import TaskError
from harness.report import write_report
from harness.results import load_report
from harness.stats import run_statistic

USERS = 40


def set_plan_copy(cs: CanarySet, users: int = USERS) -> CanarySet:
    """The same marks under a set-mean plan (a new commitment, as a user would make it)."""
    plan = Plan(
        task="set-inference", score="loss", statistic="set-mean", counterfactuals=users, alpha=0.05
    )
    draft = dataclasses.replace(cs, plan=plan, commitment="")
    return dataclasses.replace(draft, commitment=draft.compute_commitment())


@pytest.fixture(scope="module")
def marks(tiny_world, tmp_path_factory):
    cs = set_plan_copy(load_canary_set(tiny_world.canary_file))
    path = save_canary_set(cs, tmp_path_factory.mktemp("set") / "marks.json")
    return cs, path


def test_planted_marks_are_detected_and_null_model_is_not(tiny_world, marks, tmp_path):
    cs, path = marks
    k = len(cs.canaries)
    target = HFBackend(str(tiny_world.target), progress=False)
    reference = HFBackend(str(tiny_world.reference), progress=False)
    audit = run_audit(
        "set-inference", AuditContext(cs, str(path), target, "hf:target", progress=False)
    )
    prim = audit.primary.result
    assert prim.name == "set-mean" and prim.kind == "bound" and prim.k == k and prim.m == USERS
    assert prim.pvalue == pytest.approx(1 / (USERS + 1))  # the marks were seen 24 times each
    perm = [t.result for t in audit.tests if t.result.name == "set-mean-permutation"]
    assert len(perm) == 1 and perm[0].pvalue < 1e-3
    # the stored items recompute the primary p through the generic dispatcher
    s = np.array([i.scores["loss"] for i in audit.items])
    roles = np.array([i.role for i in audit.items])
    assert run_statistic("set-mean", s[roles == "canary"], s[roles == "counterfactual"]) == prim
    assert [i.id for i in audit.items[k : 2 * k]] == [f"ow-00000-{j:03d}" for j in range(k)]
    # a fixed seed makes the null outcome deterministic (the canary salt is fresh per session)
    null_ctx = AuditContext(
        cs,
        str(path),
        reference,
        "hf:ref",
        progress=False,
        seed_override=derive_seed("test-null", "1"),
        seed_reason="test",
    )
    null = run_audit("set-inference", null_ctx, role="null-control")
    assert null.primary.result.pvalue > 0.05
    assert null.seed_derivation.startswith("seed supplied by the auditor")
    # out-world users are a pure function of the audit seed: rerunning redraws the same marks
    again = run_audit(
        "set-inference", AuditContext(cs, str(path), target, "hf:target", progress=False)
    )
    assert [i.text for i in again.items] == [i.text for i in audit.items]
    from harness.verify import VerifyOptions, verify_report
    from harness.verify.rescore import RescorePlan

    honest = make_report("set inference", [audit])  # the null control used an auditor's seed
    plan = RescorePlan(counterfactuals=8, seed=1, model=f"hf:{tiny_world.target}")
    opts = VerifyOptions((path,), rescore=True, rescore_plan=plan)
    bad = [c for c in verify_report(honest, opts) if c.verdict == "FAIL"]
    assert bad == []  # was: "unknown statistic 'set-mean-permutation'" on every honest report
    report = make_report("set inference", [audit, null])
    write_report(report, tmp_path)
    back = load_report(tmp_path)
    assert back.audits[0].primary.result == prim
    html = (tmp_path / "report.html").read_text()
    assert "set-mean" in html and f"the {USERS} out-world users" in html


def test_wrong_plan_is_refused(tiny_world):
    cs = load_canary_set(tiny_world.canary_file)  # a rank-sum plan
    ctx = AuditContext(
        cs, "x", HFBackend(str(tiny_world.reference), progress=False), "hf:ref", progress=False
    )
    with pytest.raises(TaskError, match="set-mean"):
        run_audit("set-inference", ctx)


def test_mark_documents_puts_one_mark_per_document(marks):
    cs, _ = marks
    docs = [f"line one of doc {i}\nline two\nline three" for i in range(len(cs.canaries))]
    marked = mark_documents(docs, cs, derive_seed("mark", "1"))
    for doc, out, c in zip(docs, marked, cs.canaries, strict=True):
        assert c.text in out.split("\n")
        assert (
            out.replace(c.text + "\n", "", 1).rstrip("\n") == doc
            or out.replace("\n" + c.text, "", 1) == doc
        )
    assert mark_documents(docs, cs, derive_seed("mark", "1")) == marked
    with pytest.raises(ValueError, match="one document per canary"):
        mark_documents(docs[:-1], cs, b"0" * 16)


def test_cli_new_set_mean_plan_and_audit(tiny_world, tmp_path):
    runner = CliRunner()
    f = tmp_path / "user.json"
    r = runner.invoke(
        main,
        [
            "canaries",
            "new",
            "-k",
            "4",
            "-l",
            "6",
            "--statistic",
            "set-mean",
            "-m",
            "9",
            "--local-beacon",
            str(tmp_path / "beacon.key"),
            "--beacon-delay",
            "2",
            "--out",
            str(f),
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(f.read_text())
    plan = d["committed"]["plan"]
    assert plan["task"] == "set-inference" and plan["statistic"] == "set-mean"
    assert canary_set_from_dict(d).pool_size == 4 + 4 * 9  # the user's K marks + N users' marks
    import time

    time.sleep(3.1)  # the pinned round of the local beacon must be out
    r = runner.invoke(main, ["canaries", "assign", str(f), "--local-beacon", str(tmp_path / "beacon.key")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        main,
        [
            "audit",
            "--model",
            f"hf:{tiny_world.reference}",
            "--canaries",
            str(f),
            "--out",
            str(tmp_path / "rep"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "set-mean on loss" in r.output
    assert load_report(tmp_path / "rep").audits[0].primary.result.m == 9
    r = runner.invoke(main, ["verify", str(tmp_path / "rep"), "--canaries", str(f), "--rescore", "6"])
    assert r.exit_code == 0, r.output
    assert "[FAIL]" not in r.output and "no RFC 3161 timestamp" in r.output
