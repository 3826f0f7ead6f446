"""Protocol v2 end to end on a tiny model: commit -> timestamp -> beacon -> assign -> audit ->
verify, and every tamper of the canary file, the timestamp, the beacon record, the secret and the
report failing `tdp verify` with a check that names it."""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from canaries.canary_set import (
    CanarySet,
    CanarySetError,
    Plan,
    canary_set_from_dict,
    canonical_json,
    load_canary_set,
    save_canary_set,
    secret_path,
)
from canaries.generators import words_spec
from harness.audit import AuditContext, audit_digest, make_report, run_audit
from harness.backends.hf import HFBackend
from harness.cli import main
from harness.protocol.beacon import round_time
from harness.protocol.local_beacon import LocalTestBeacon
from harness.protocol.local_tsa import LocalTSA
from harness.protocol.pool import ProtocolError, add_timestamp, assign, commit
from harness.protocol.timestamp import record_from_reply, timestamp_request
from harness.report.markdown import render_markdown
from harness.results import Report
from harness.stats import PlanViolation
from harness.tiny import tiny_model
from harness.verify import VerifyOptions, verify_report
from harness.verify.rescore import RescorePlan

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (local TSA)")


@dataclass(frozen=True)
class V2World:
    root: Path
    cfile: Path
    cs: CanarySet
    seed: bytes
    beacon: LocalTestBeacon
    tsa: LocalTSA
    model: Path
    report: dict


def stamp(cs: CanarySet, tsa: LocalTSA) -> CanarySet:
    request = timestamp_request(cs.commitment)
    return add_timestamp(cs, record_from_reply(tsa.stamp(request), cs.commitment, tsa.chain_pem, request))[0]


def wait_for(cs: CanarySet, beacon: LocalTestBeacon) -> None:
    time.sleep(max(0.0, round_time(beacon.chain, cs.beacon["round"]) - time.time() + 0.05))


def committed_set(beacon, tsa, plan, seed, k=4, delay=3.0) -> CanarySet:
    cs, _ = commit(words_spec(6, prefix_length=2), k, plan, beacon.chain, delay, seed)
    cs = stamp(cs, tsa)
    wait_for(cs, beacon)
    return assign(cs, seed, beacon.sign(int(cs.beacon["round"])))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> V2World:
    root = tmp_path_factory.mktemp("v2")
    model = tiny_model(tmp_path_factory.getbasetemp() / "tiny-models")
    beacon, tsa = LocalTestBeacon.create(), LocalTSA.create(root / "tsa")
    seed = b"s" * 32
    cs = committed_set(beacon, tsa, Plan(counterfactuals=30, alpha=0.05), seed)
    cfile = save_canary_set(cs, root / "c.json", seed)
    audit = run_audit("canary-rank", AuditContext(cs, str(cfile), HFBackend(str(model)), f"hf:{model}",
                                                  progress=False))
    report = make_report("v2 test", [audit]).to_dict()
    return V2World(root, cfile, cs, seed, beacon, tsa, model, json.loads(json.dumps(report)))


def checks_of(report: dict, files, rescore: bool = False, commitments=()):
    plan = RescorePlan(counterfactuals=5, seed=0)
    files = tuple(files) if isinstance(files, list | tuple) else (files,)
    return verify_report(Report.from_dict(report), VerifyOptions(files, tuple(commitments), rescore, plan))


def failed(checks) -> dict[str, str]:
    return {c.name: c.detail for c in checks if c.verdict == "FAIL"}


def test_honest_v2_chain_verifies_and_names_the_local_stand_ins(world):
    checks = checks_of(world.report, world.cfile, rescore=True, commitments=[world.cs.commitment])
    assert failed(checks) == {}
    verdicts = {c.name: c.verdict for c in checks}
    assert verdicts["protocol: assigned"] == "ok" and verdicts["secret"] == "ok"
    assert verdicts["rescore"] == "ok" and verdicts["published commitment"] == "ok"
    opened = {c.name: c.detail for c in checks if c.verdict == "open"}
    assert "LOCAL TEST TSA" in opened["protocol: timestamped"]
    assert "NOT public randomness" in opened["protocol: beacon"]


def test_nothing_is_drawn_at_audit_time_so_junk_files_change_nothing(world, tmp_path):
    """Seed shopping: a copy of the model with a junk weight file gives the same identity, the
    same scoring seed and the same p-value (v1 re-drew counterfactuals for every byte added)."""
    copy_dir = tmp_path / "model"
    shutil.copytree(world.model, copy_dir)
    (copy_dir / "junk.bin").write_bytes(b"\0" * 1024)
    a = run_audit("canary-rank", AuditContext(world.cs, str(world.cfile), HFBackend(str(copy_dir)),
                                              f"hf:{copy_dir}", progress=False))
    stored = world.report["audits"][0]
    assert a.audit_seed == stored["audit_seed"]
    assert [i.text for i in a.items] == [i["text"] for i in stored["items"]]
    assert a.primary.result.pvalue == stored["tests"][0]["result"]["pvalue"]
    assert a.model.fingerprint["weights_sha256"] == stored["model"]["fingerprint"]["weights_sha256"]


def _file_dict(world) -> dict:
    return json.loads(world.cfile.read_text())


def _recommit(d: dict) -> dict:
    """What a forger does after editing a committed field: recompute the commitment."""
    import hashlib

    d["commitment"] = hashlib.sha256(canonical_json(d["committed"])).hexdigest()
    return d


def _flip(hexstr: str) -> str:
    return ("0" if hexstr[0] != "0" else "1") + hexstr[1:]


COMMITTED_EDITS = {
    "created (back-dating)": lambda c: c.update(created="2020-01-01T00:00:00+00:00"),
    "plan alpha": lambda c: c["plan"].update(alpha=0.5),
    "plan score": lambda c: c["plan"].update(score="zlib"),
    "pinned round": lambda c: c["beacon"].update(round=c["beacon"]["round"] + 1),
    "seed digest": lambda c: c.update(seed_digest=_flip(c["seed_digest"])),
    "pool size": lambda c: c.update(pool_size=c["pool_size"] + 1),
    "beacon key": lambda c: c["beacon"]["chain"].update(public_key=_flip(c["beacon"]["chain"]["public_key"])),
}


@pytest.mark.parametrize("edit", sorted(COMMITTED_EDITS))
def test_an_edited_commitment_payload_fails_to_load_or_to_verify(world, tmp_path, edit):
    d = _file_dict(world)
    COMMITTED_EDITS[edit](d["committed"])
    with pytest.raises(CanarySetError, match="commitment mismatch"):
        canary_set_from_dict(copy.deepcopy(d))
    # a forger recomputes the commitment: the timestamp no longer covers it, the report's audit
    # is on another commitment, and whatever the edit touched fails on its own
    path = tmp_path / "c.json"
    try:
        cs = canary_set_from_dict(_recommit(d))
    except CanarySetError as e:  # some edits make the file inconsistent in itself
        assert "pool" in str(e) or "chain" in str(e) or "beacon" in str(e), e
        return
    save_canary_set(cs, path, world.seed)
    bad = failed(checks_of(world.report, path))
    assert "canary file" in bad  # the given file's commitment belongs to no audit
    report = copy.deepcopy(world.report)  # a forger who also rewrites the report's commitment
    report["audits"][0]["canary_set"]["commitment"] = cs.commitment
    bad = failed(checks_of(_reseal(report), path))
    assert "protocol: timestamped" in bad and "token" in bad["protocol: timestamped"].lower() or \
        "imprint" in bad["protocol: timestamped"].lower() or "digest" in bad["protocol: timestamped"]


def _reseal(report: dict) -> dict:
    r = Report.from_dict(report)
    report["extra"]["audit_digest"] = audit_digest(r.audits, r.holm_adjusted, r.schema_version)
    return report


def _swap_canary_and_counterfactual(d):
    d["canaries"][0]["text"], d["counterfactuals"][0]["text"] = (
        d["counterfactuals"][0]["text"], d["canaries"][0]["text"])
    d["canaries"][0]["units"], d["counterfactuals"][0]["units"] = (
        d["counterfactuals"][0]["units"], d["canaries"][0]["units"])


RECORD_EDITS = {  # edits outside the commitment: the file still loads; verify names the problem
    "canary swapped with a counterfactual (owner selection)": (_swap_canary_and_counterfactual, "protocol: assigned", "seed and the beacon round derive"),
    "beacon signature": (lambda d: d["assignment"]["round"].update(signature=_flip(d["assignment"]["round"]["signature"])), "protocol: beacon", "round"),
    "beacon randomness": (lambda d: d["assignment"]["round"].update(randomness=_flip(d["assignment"]["round"]["randomness"])), "protocol: beacon", "randomness"),
    "beacon round number": (lambda d: d["assignment"]["round"].update(round=d["assignment"]["round"]["round"] + 1), "protocol: beacon", "committed round"),
    "timestamp token": (lambda d: d["timestamps"][0].update(token=d["timestamps"][0]["token"][:-8] + "AAAAAAA="), "protocol: timestamped", "timestamp"),
    "timestamp chain": (lambda d: d["timestamps"][0].update(chain_pem=d["timestamps"][0]["chain_pem"].split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"), "protocol: timestamped", "timestamp"),
    "timestamp removed": (lambda d: d.update(timestamps=[]), "timeline", "timeline"),
}


@pytest.mark.parametrize("edit", sorted(RECORD_EDITS))
def test_each_protocol_record_tamper_fails_verify_naming_it(world, tmp_path, edit):
    fn, check, word = RECORD_EDITS[edit]
    d = _file_dict(world)
    fn(d)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(d))
    shutil.copy(secret_path(world.cfile), secret_path(path))
    bad = failed(checks_of(world.report, path))
    assert check in bad, (edit, bad)
    assert word.lower() in bad[check].lower(), bad[check]


def test_a_wrong_or_missing_secret_fails(world, tmp_path):
    path = tmp_path / "c.json"
    shutil.copy(world.cfile, path)
    bad = failed(checks_of(world.report, path))
    assert "secret not revealed" in bad["secret"]
    secret_path(path).write_text(json.dumps({"seed": (b"t" * 32).hex()}))
    secret_path(path).chmod(0o600)
    bad = failed(checks_of(world.report, path))
    assert "seed digest" in bad["secret"] and "protocol: assigned" in bad


def test_another_valid_canary_file_and_a_wrong_published_commitment_fail(world, tmp_path):
    other = committed_set(world.beacon, world.tsa, Plan(counterfactuals=30, alpha=0.05), b"o" * 32, delay=2.5)
    opath = save_canary_set(other, tmp_path / "other.json", b"o" * 32)
    checks = checks_of(world.report, opath)
    assert any(c.verdict == "FAIL" and "belongs to no audit" in c.detail for c in checks)
    assert "none of the canary files given" in failed(checks)["canary file"]
    bad = failed(checks_of(world.report, world.cfile, commitments=[other.commitment]))
    assert "published commitment" in bad


REPORT_EDITS = {
    "counterfactual text": (lambda a: a["items"][-1].update(text=a["items"][0]["text"] + " x"), "counterfactuals"),
    "format version": (lambda a: a["canary_set"].update(format_version=1), "canary file"),
    "timeline step": (lambda a: a["canary_set"]["protocol"][1].update(verdict="ok", detail="a real TSA"), "timeline"),
    "log10 p-value": (lambda a: a["tests"][0]["result"].update(log10_pvalue=-40.0), "statistics"),
    "scoring seed": (lambda a: a.update(audit_seed="00" * 32), "audit seed"),
}


@pytest.mark.parametrize("edit", sorted(REPORT_EDITS))
def test_each_resealed_report_tamper_fails(world, edit):
    fn, check = REPORT_EDITS[edit]
    report = copy.deepcopy(world.report)
    fn(report["audits"][0])
    assert "digest" in failed(checks_of(report, world.cfile))
    assert check in failed(checks_of(_reseal(report), world.cfile)), edit


def test_late_timestamp_other_round_and_unpublished_round_are_refused(world):
    plan = Plan(counterfactuals=10)
    cs, seed = commit(words_spec(6), 2, plan, world.beacon.chain, 0.0, b"l" * 32)
    with pytest.raises(ProtocolError, match="not before beacon round"):
        stamp(cs, world.tsa)
    cs, seed = commit(words_spec(6), 2, plan, world.beacon.chain, 60.0, b"l" * 32)
    pinned = int(cs.beacon["round"])
    with pytest.raises(ProtocolError, match="not the committed round"):
        assign(cs, seed, world.beacon.sign(pinned - 30))
    with pytest.raises(ProtocolError, match="not published until"):
        assign(cs, seed, world.beacon.sign(pinned))
    with pytest.raises(ProtocolError, match="seed digest"):
        assign(cs, b"x" * 32, world.beacon.sign(pinned))
    with pytest.raises(CanarySetError, match="no canaries yet"):
        cs.require_assigned()


def test_the_primary_reference_must_be_the_committed_one(world, tmp_path):
    other = tiny_model(tmp_path, corpus_bytes=30_000)
    ident = HFBackend(str(world.model)).fingerprint().identity_digest()
    plan = Plan(score="ref_ratio", counterfactuals=20, alpha=0.05,
                reference={"spec": f"hf:{world.model}", "identity": ident})
    cs = committed_set(world.beacon, world.tsa, plan, b"r" * 32, delay=2.5)
    target = HFBackend(str(other))
    crafted = AuditContext(cs, "c.json", target, f"hf:{other}", HFBackend(str(other)), f"hf:{other}")
    with pytest.raises(PlanViolation, match="not the committed one"):
        run_audit("canary-rank", crafted)
    honest = AuditContext(cs, "c.json", target, f"hf:{other}", HFBackend(str(world.model)),
                          f"hf:{world.model}", progress=False)
    a = run_audit("canary-rank", honest)
    assert a.primary.score == "ref_ratio" and a.primary.result.kind == "bound"
    # the same reference, uncommitted (a plan without one): reference-based tests are estimates
    loose = replace(cs, plan=replace(plan, score="loss", reference=None))
    b = run_audit("canary-rank", replace(honest, canary_set=loose))
    ref = [t for t in b.tests if t.score == "ref_ratio"]
    assert ref and all(t.result.kind == "estimate" and "NOT a bound" in t.result.method for t in ref)


def test_v1_files_still_audit_and_verify_and_say_what_v1_leaves_open(tiny_world):
    from harness.audit import audit_from_paths

    a = audit_from_paths(f"hf:{tiny_world.target}", tiny_world.canary_file, progress=False)
    report = make_report("v1", [a]).to_dict()
    checks = checks_of(json.loads(json.dumps(report)), tiny_world.canary_file)
    assert failed(checks) == {}
    fmt = next(c for c in checks if c.name == "protocol: format")
    assert fmt.verdict == "open" and "selected" in fmt.detail
    md = render_markdown(Report.from_dict(report))
    assert "format v1" in md and "planted" in md


def test_the_report_shows_the_timeline_and_names_missing_steps(world):
    md = render_markdown(Report.from_dict(world.report))
    for step in ("committed", "timestamp (RFC 3161)", "public beacon round", "canaries derived",
                 "planted", "audited", "verified"):
        assert f"| {step} |" in md, step
    assert "LOCAL TEST" in md and "not public randomness" in md.lower()


def test_the_five_commands_of_the_readme(world, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = CliRunner().invoke
    assert run(main, ["canaries", "new", "-k", "3", "-l", "6", "-m", "20", "--alpha", "0.05",
                      "--local-beacon", "b.key", "--beacon-delay", "3", "-o", "c.json"]).exit_code == 0
    res = run(main, ["canaries", "timestamp", "c.json", "--local-tsa", "tsa"])
    assert res.exit_code == 0, res.output
    wait_for(load_canary_set("c.json"), LocalTestBeacon.load("b.key"))
    res = run(main, ["canaries", "assign", "c.json", "--local-beacon", "b.key"])
    assert res.exit_code == 0 and "3 canaries" in res.output, res.output
    res = run(main, ["audit", "--model", f"hf:{world.model}", "--canaries", "c.json", "-o", "rep",
                     "--no-progress"])
    assert res.exit_code == 0, res.output
    commitment = load_canary_set("c.json").commitment
    res = run(main, ["verify", "rep", "--canaries", "c.json", "--commitment", commitment,
                     "--rescore", "5"])
    assert res.exit_code == 0 and "verified:" in res.output and "open" in res.output, res.output
    res = run(main, ["verify", "rep", "--canaries", "c.json", "--commitment", "ab" * 32, "--no-rescore"])
    assert res.exit_code == 1 and "VERIFICATION FAILED" in res.output
