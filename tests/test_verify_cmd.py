"""`tdp verify` on a real report from a tiny trained model: clean passes, each field edit fails.

Each tamper also recomputes the audit digest, as a forger would: the edit must still be caught
by a check that follows from the data (seed derivation, redrawn counterfactuals, recomputed
statistics, the canary file, the plan).
"""

from __future__ import annotations

import copy
import json

import pytest
from click.testing import CliRunner

from canaries.canary_set import Plan, load_canary_set, new_canary_set, save_canary_set
from canaries.generators import words_spec
from harness.audit import AuditContext, audit_digest, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.cli import main
from harness.report import write_report
from harness.results import Report
from harness.tiny import tiny_model
from harness.verify import VerifyOptions, verify_report
from harness.verify.rescore import RescorePlan


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    model = tiny_model(tmp_path_factory.getbasetemp() / "tiny-models")  # shared across tests
    cs, seed = new_canary_set(words_spec(6), 4, Plan(counterfactuals=30, alpha=0.05), b"v" * 32)
    cfile = save_canary_set(cs, root / "canaries.json", seed)
    backend = HFBackend(str(model))
    audit = run_audit(
        "canary-rank", AuditContext(cs, str(cfile), backend, f"hf:{model}", progress=False)
    )
    report = make_report("verify test", [audit])
    write_report(report, root / "report")
    return root, cfile, json.loads((root / "report" / "report.json").read_text())


def _options(cfiles, rescore=0, model=None):
    """VerifyOptions with the given files; rescore=N re-scores N counterfactuals (0: no model)."""
    files = tuple(cfiles) if isinstance(cfiles, list | tuple) else (cfiles,)
    plan = RescorePlan(counterfactuals=rescore, seed=0, model=model)
    return VerifyOptions(canaries=files, rescore=rescore > 0 or model is not None, rescore_plan=plan)


def _failed(d, cfile, **kw):
    checks = verify_report(Report.from_dict(d), _options(cfile, **kw))
    return {c.name for c in checks if c.verdict == "FAIL"}


def _reseal(d):
    r = Report.from_dict(d)
    d["extra"]["audit_digest"] = audit_digest(r.audits, r.holm_adjusted)
    return d


def test_clean_report_verifies_including_rescore(real_report):
    root, cfile, d = real_report
    assert _failed(d, cfile, rescore=5) == set()
    res = CliRunner().invoke(main, ["verify", str(root / "report"), "--canaries", str(cfile)])
    assert res.exit_code == 0, res.output
    assert "verified:" in res.output


def _items(d, role):
    return [i for i in d["audits"][0]["items"] if i["role"] == role]


def _cross_a_canary(d):
    """Move one counterfactual's score across the first canary's, so the canary's rank changes."""
    c = _items(d, "canary")[0]["scores"]["loss"]
    cfs = _items(d, "counterfactual")
    below = [i for i in cfs if i["scores"]["loss"] < c]
    if below:
        below[0]["scores"]["loss"] = c + 1.0
    else:
        cfs[0]["scores"]["loss"] = c - 1.0


TAMPERS = {
    "primary p-value": (
        lambda d: d["audits"][0]["tests"][0]["result"].update(pvalue=1e-9),
        "statistics",
    ),
    "secondary p-value": (
        lambda d: d["audits"][0]["tests"][1]["result"].update(pvalue=0.5),
        "statistics",
    ),
    "statistic value": (
        lambda d: d["audits"][0]["tests"][0]["result"].update(statistic=11.0),
        "statistics",
    ),
    "a canary score": (lambda d: _items(d, "canary")[0]["scores"].update(loss=0.0), "statistics"),
    "a counterfactual score": (
        _cross_a_canary,
        "statistics",
    ),
    # an edit that changes no rank leaves every statistic intact: only re-scoring catches it
    "a score, ranks unchanged": (
        lambda d: _items(d, "counterfactual")[3]["scores"].update(loss=-99.0),
        "rescore",
    ),
    "model name": (lambda d: d["audits"][0]["model"].update(spec="hf:gpt2"), "model name"),
    "fingerprint model + spec": (
        lambda d: (
            d["audits"][0]["model"].update(spec="hf:/elsewhere/model"),
            d["audits"][0]["model"]["fingerprint"].update(
                model="/elsewhere/model", weights_sha256=None
            ),
        ),
        "audit seed",
    ),
    "weights hash": (
        lambda d: d["audits"][0]["model"]["fingerprint"].update(weights_sha256="0" * 64),
        "audit seed",
    ),
    "audit seed": (lambda d: d["audits"][0].update(audit_seed="ab" * 32), "audit seed"),
    "commitment": (
        lambda d: d["audits"][0]["canary_set"].update(commitment="f" * 64),
        "canary file",
    ),
    "canary text": (
        lambda d: _items(d, "canary")[1].update(text="a wholly different canary"),
        "canary file",
    ),
    "counterfactual text": (
        lambda d: _items(d, "counterfactual")[0].update(text="cherry picked"),
        "counterfactuals",
    ),
    "dropped counterfactual": (lambda d: d["audits"][0]["items"].pop(), "counterfactuals"),
    "plan statistic": (
        lambda d: d["audits"][0]["canary_set"]["plan"].update(statistic="set-mean"),
        "plan",
    ),
    "plan alpha": (lambda d: d["audits"][0]["canary_set"]["plan"].update(alpha=0.5), "canary file"),
    "primary swapped": (
        lambda d: (
            d["audits"][0]["tests"][0].update(primary=False),
            d["audits"][0]["tests"][1].update(primary=True),
        ),
        "plan",
    ),
    "seed derivation text": (
        lambda d: d["audits"][0].update(seed_derivation="chosen by me"),
        "audit seed",
    ),
}


@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_each_single_field_tamper_fails(real_report, field):
    root, cfile, d = real_report
    edit, must_fail = TAMPERS[field]
    unsealed = copy.deepcopy(d)
    edit(unsealed)
    assert "digest" in _failed(unsealed, cfile)  # a careless edit breaks the seal
    sealed = _reseal(copy.deepcopy(unsealed))
    failed = _failed(sealed, cfile, rescore=10_000 if must_fail == "rescore" else 0)
    assert must_fail in failed, (field, failed)  # a resealed forgery is caught by the data


def test_cli_exits_nonzero_on_tamper(real_report, tmp_path):
    root, cfile, d = real_report
    bad = copy.deepcopy(d)
    bad["audits"][0]["tests"][0]["result"]["pvalue"] = 1e-12
    (tmp_path / "report.json").write_text(json.dumps(bad))
    res = CliRunner().invoke(main, ["verify", str(tmp_path), "--canaries", str(cfile)])
    assert res.exit_code == 1 and "VERIFICATION FAILED" in res.output and "[FAIL]" in res.output


def test_rescore_detects_a_different_model(real_report, tmp_path):
    root, cfile, d = real_report
    other = tiny_model(tmp_path, corpus_bytes=30_000)
    checks = verify_report(Report.from_dict(d), _options(cfile, rescore=3, model=f"hf:{other}"))
    assert [c.verdict for c in checks if c.name == "rescore"] == ["FAIL"]


def test_report_over_two_canary_sets_takes_one_file_per_commitment(
    real_report, tmp_path, tmp_path_factory
):
    root, cfile, _ = real_report
    model = tiny_model(tmp_path_factory.getbasetemp() / "tiny-models")
    other, seed = new_canary_set(words_spec(6), 4, Plan(counterfactuals=30, alpha=0.05), b"w" * 32)
    ofile = save_canary_set(other, tmp_path / "other.json", seed)
    backend = HFBackend(str(model))
    audits = [
        run_audit(
            "canary-rank",
            AuditContext(cs, str(f), backend, f"hf:{model}", progress=False),
            title=title,
        )
        for title, cs, f in (("set A", load_canary_set(cfile), cfile), ("set B", other, ofile))
    ]
    report = make_report("two sets", audits)
    assert {c.verdict for c in verify_report(report, _options([cfile, ofile]))} <= {"ok", "skip", "open"}
    # the file in hand for the first set must not be taken for the second one's
    tampered = json.loads(json.dumps(report.to_dict()))
    tampered["audits"][1]["canary_set"]["commitment"] = load_canary_set(cfile).commitment
    failed = {(c.audit, c.name) for c in verify_report(Report.from_dict(tampered), _options([cfile, ofile]))
              if c.verdict == "FAIL"}
    assert ("set B", "canary file") in failed and not any(a == "set A" for a, _ in failed)


def test_a_forged_cache_chunk_with_a_valid_checksum_is_caught_by_default_rescoring(
    tmp_path, tmp_path_factory
):
    """Issue 14 #13: a cache chunk written through the cache's own writer (valid checksum) that
    makes every counterfactual improbable turns a null audit into a tiny p; the report's scores
    are then not evidence, and the default verify (re-scoring) must fail it."""
    import numpy as np

    from harness.audit import audit_seed, counterfactual_items
    from harness.cache import ScoreCache, text_key

    model = tiny_model(tmp_path_factory.getbasetemp() / "tiny-models")
    backend = HFBackend(str(model))
    cs, seed = new_canary_set(words_spec(6), 4, Plan(counterfactuals=60, alpha=0.05), b"f" * 32)
    cfile = save_canary_set(cs, tmp_path / "c.json", seed)
    fp = backend.fingerprint()
    cfs = [t for _, t in counterfactual_items(cs, audit_seed(cs.commitment, fp),
                                              "counterfactuals", 60, "cf-")]
    cache = ScoreCache(tmp_path / "cache")
    honest = backend.token_logprobs(cfs)
    cache.store(fp, {text_key(t): np.full_like(lp, -50.0) for t, lp in zip(cfs, honest, strict=True)})
    a = run_audit("canary-rank", AuditContext(cs, str(cfile), backend, f"hf:{model}",
                                              progress=False, cache=cache))
    prim = a.primary.result  # the forged cache ranks every canary first: the smallest p there is
    assert prim.pvalue == prim.min_attainable_p < 1e-5
    report = _reseal(make_report("forged", [a]).to_dict())
    checks = verify_report(Report.from_dict(report), _options(cfile, rescore=20))
    assert "rescore" in {c.name for c in checks if c.verdict == "FAIL"}
    unchecked = verify_report(Report.from_dict(report), _options(cfile))
    rescore = next(c for c in unchecked if c.name == "rescore")
    assert rescore.verdict == "open" and "not evidence by themselves" in rescore.detail
