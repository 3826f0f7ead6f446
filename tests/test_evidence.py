"""Evidence bundles: an honest bundle verifies (also moved to another layout, re-scored with a
copy of the model); every edited, removed, added or reordered member, a bundle re-signed with
another key, a broken custody link and a swapped PDF each fail `tdp evidence verify`, naming it."""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.evidence.bundle import SEAL, sha256
from harness.evidence.custody import check_chain, line_bytes, parse_log
from tests.evidence_world import (
    failed_lines,
    make_case,
    owner,
    repack,
    reseal,
    tdp,
    unpack,
    verify,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (local TSA)")


def _weasyprint() -> bool:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


needs_pdf = pytest.mark.skipif(not _weasyprint(), reason="WeasyPrint (and Pango) not installed")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    import torch

    from harness.tiny import tiny_model

    if not _weasyprint():
        pytest.skip("WeasyPrint (and Pango) not installed: `tdp evidence pack` renders a PDF")
    torch.set_num_threads(1)
    model = tiny_model(tmp_path_factory.getbasetemp() / "tiny-models")
    return make_case(tmp_path_factory.mktemp("evidence"), model)


def _fails(bundle: Path, *extra: str) -> str:
    code, out = verify(bundle, *extra)
    assert code == 1, out
    assert "VERDICT: FAILED" in out
    return "\n".join(failed_lines(out))


def test_honest_bundle_verifies_with_pinned_signer_and_rescoring(case):
    code, out = verify(case.bundle, "--signer", case.fingerprint, "--model", f"hf:{case.model}",
                       "--rescore", "5")
    assert code == 0, out
    assert not failed_lines(out)
    assert "VERDICT: VERIFIED, WITH OPEN ITEMS" in out
    assert f"key {case.fingerprint} is the pinned signer" in out
    opened = [ln for ln in out.splitlines() if "[open]" in ln]
    assert opened and all("local test" in ln.lower() for ln in opened), opened  # only the stand-ins


def test_verify_without_pin_or_model_says_what_stays_open(case):
    code, out = verify(case.bundle)
    assert code == 0, out
    assert "nobody checked that this key is the owner's" in out
    assert "not re-scored: pass --model SPEC" in out


def test_honest_bundle_verifies_on_another_machine_layout(case, tmp_path, monkeypatch):
    """Moved bundle, moved model, the owner's folder gone: nothing reads the recorded paths."""
    elsewhere = tmp_path / "court" / "exhibit-7.tdp.zip"
    elsewhere.parent.mkdir(parents=True)
    shutil.copy(case.bundle, elsewhere)
    model_copy = tmp_path / "models" / "their-copy"
    shutil.copytree(case.model, model_copy)
    hidden = case.case.with_name("case-hidden")
    case.case.rename(hidden)
    monkeypatch.chdir(tmp_path)
    try:
        code, out = verify(elsewhere, "--signer", case.fingerprint, "--model", f"hf:{model_copy}")
    finally:
        hidden.rename(case.case)
    assert code == 0, out
    assert "re-scored 4 canaries" in out and "VERDICT: VERIFIED" in out


def test_every_member_edited_fails_naming_it(case, tmp_path):
    entries, manifest = unpack(case.bundle)
    for name in entries:
        edited = dict(entries)
        edited[name] = entries[name][:-1] + bytes([entries[name][-1] ^ 1])
        fails = _fails(repack(tmp_path / "edited.zip", edited), "--signer", case.fingerprint)
        if name in SEAL:
            assert name in fails, (name, fails)
        else:
            assert f"{name} :: sha256" in fails, (name, fails)


def test_every_member_removed_fails_naming_it(case, tmp_path):
    entries, manifest = unpack(case.bundle)
    for name in entries:
        fewer = {n: d for n, d in entries.items() if n != name}
        if name == "manifest.json":
            with zipfile.ZipFile(tmp_path / "removed.zip", "w") as z:
                for n, d in fewer.items():
                    z.writestr(n, d)
            assert "manifest.json :: present" in _fails(tmp_path / "removed.zip")
            continue
        fails = _fails(repack(tmp_path / "removed.zip", fewer), "--signer", case.fingerprint)
        if name in SEAL:
            assert name in fails, (name, fails)
        else:
            assert f"{name} :: present" in fails, (name, fails)


def test_an_added_member_fails_naming_it(case, tmp_path):
    entries, _ = unpack(case.bundle)
    entries["runs/run/extra-evidence.txt"] = b"trust me\n"
    fails = _fails(repack(tmp_path / "added.zip", entries), "--signer", case.fingerprint)
    assert "runs/run/extra-evidence.txt :: listed" in fails


def test_reordered_members_fail(case, tmp_path):
    entries, manifest = unpack(case.bundle)
    names = list(entries)
    i, j = names.index("runs/run/report.json"), names.index("models.json")
    names[i], names[j] = names[j], names[i]
    fails = _fails(repack(tmp_path / "order.zip", entries, names), "--signer", case.fingerprint)
    assert "models.json :: order" in fails
    # reordering the manifest's list breaks the signature; re-signed, the archive disagrees
    members = list(manifest.members)
    members[1], members[2] = members[2], members[1]
    edited = dict(entries)
    edited["manifest.json"] = replace(manifest, members=tuple(members)).to_bytes()
    assert "manifest.sig.json :: signature" in _fails(repack(tmp_path / "m.zip", edited))
    fails = _fails(reseal(tmp_path / "m2.zip", entries, replace(manifest, members=tuple(members)),
                          owner(case), archive_order=list(entries)), "--signer", case.fingerprint)
    assert fails.count("[FAIL]") == 1 and f"{members[2].name} :: order" in fails


def test_a_bundle_resigned_with_another_key_fails_against_the_pinned_signer(case, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from harness.evidence.signing import Signer

    entries, manifest = unpack(case.bundle)
    forger = Signer(Ed25519PrivateKey.generate())
    forged = reseal(tmp_path / "forged.zip", entries, manifest, forger)
    fails = _fails(forged, "--signer", case.fingerprint)
    assert "manifest.sig.json :: signer" in fails and forger.fingerprint in fails
    pub = case.key.with_name(case.key.name + ".pub")
    assert "manifest.sig.json :: signer" in _fails(forged, "--signer", str(pub))
    code, out = verify(forged)  # without a pin the verdict names the key it cannot vouch for
    assert code == 0 and f"signed by key {forger.fingerprint}; nobody checked" in out


def _rewrite_log(data: bytes, edit) -> bytes:
    records, problems = parse_log(data)
    assert not problems
    out, prev = b"", None
    for r in map(edit, records):
        line = line_bytes(r, prev)
        out += line + b"\n"
        prev = sha256(line)
    return out


def test_a_broken_custody_link_fails_naming_the_file(case, tmp_path):
    """The log itself records that report.json changed between `tdp audit` and `tdp verify`."""
    entries, manifest = unpack(case.bundle)
    log = "runs/run/custody.jsonl"
    report = str(case.run.absolute() / "report.json")

    def edit(r):
        if r.command == "tdp verify":
            return replace(r, inputs={**r.inputs, report: "0" * 64})
        return r

    entries[log] = _rewrite_log(entries[log], edit)
    fails = _fails(reseal(tmp_path / "custody.zip", entries, manifest, owner(case)),
                   "--signer", case.fingerprint)
    assert "runs/run/report.json :: chain of custody" in fails
    assert "changed between `tdp audit`" in fails and "`tdp verify`" in fails


def test_a_custody_line_removed_fails_naming_the_log_line(case, tmp_path):
    entries, manifest = unpack(case.bundle)
    log = "runs/run/custody.jsonl"
    lines = entries[log].splitlines(keepends=True)
    entries[log] = b"".join(lines[1:])
    fails = _fails(reseal(tmp_path / "line.zip", entries, manifest, owner(case)))
    assert f"{log} :: custody line 1" in fails


def test_a_file_edited_between_commands_breaks_the_chain(tmp_path):
    """The real thing: a canary file edited by hand between two `tdp` commands."""
    cfile = tmp_path / "d" / "c.json"
    tdp(f"canaries new --format-version 1 -k 2 -l 4 -m 5 -o {cfile}")
    cfile.write_text(cfile.read_text() + " \n")  # still a valid canary file
    tdp(f"canaries verify {cfile}")
    records, problems = parse_log((tmp_path / "d" / "custody.jsonl").read_bytes())
    assert not problems and [r.command for r in records] == ["tdp canaries new",
                                                             "tdp canaries verify"]
    links = check_chain(records, {str(cfile): sha256(cfile.read_bytes())})
    broken = [link for link in links if link.verdict == "FAIL"]
    assert broken and broken[0].path == str(cfile)
    assert "between `tdp canaries new`" in broken[0].detail


def test_custody_logs_hold_no_secret(case, tmp_path):
    seed = json.loads((case.cfile.with_name("canaries.json.secret")).read_text())["seed"]
    entries, _ = unpack(case.bundle)
    logs = b"".join(d for n, d in entries.items() if n.endswith("custody.jsonl"))
    assert logs and seed.encode() not in logs
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "a document long enough"}\n')
    hex_seed = "ab" * 16
    tdp(f"canaries inject --canaries {case.cfile} --corpus {corpus} --seed {hex_seed} "
        f"-o {tmp_path / 'out' / 'c.jsonl'}")
    text = (tmp_path / "out" / "custody.jsonl").read_text()
    assert hex_seed not in text and '"seed":"<redacted>"' in text
    tdp(f"--no-custody canaries inject --canaries {case.cfile} --corpus {corpus} "
        f"-o {tmp_path / 'quiet' / 'c.jsonl'}")
    assert not (tmp_path / "quiet" / "custody.jsonl").exists()


@needs_pdf
def test_a_swapped_pdf_fails_naming_it(case, tmp_path):
    from harness.evidence.pdf import PdfInput, render_pdf
    from harness.results import Report

    entries, manifest = unpack(case.bundle)
    report = Report.from_dict(json.loads(entries["runs/run/report.json"]))
    other = replace(report, title="a different story")
    pdf = render_pdf(PdfInput("a different story", manifest.created, "someone", (
        ("run", other, entries["runs/run/report.html"].decode()),), (), (), case.fingerprint,
        (("runs/run/report.json", sha256(b"other data")),)))
    swapped = dict(entries, **{"report.pdf": pdf})
    assert "report.pdf :: sha256" in _fails(repack(tmp_path / "swap.zip", swapped))
    resealed = reseal(tmp_path / "swap2.zip", swapped, manifest, owner(case))
    fails = _fails(resealed, "--signer", case.fingerprint)
    assert "report.pdf :: rendered from" in fails


@needs_pdf
@pytest.mark.skipif(not (shutil.which("pdftoppm") and shutil.which("pdftotext")),
                    reason="poppler-utils (pdftoppm, pdftotext) not installed")
def test_the_pdf_renders_with_summary_timeline_plots_and_hashes(case, tmp_path):
    import subprocess

    from harness.evidence.pdf import read_pdf

    entries, manifest = unpack(case.bundle)
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(entries["report.pdf"])
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "2", str(pdf),
                    str(tmp_path / "page")], check=True)
    pngs = sorted(tmp_path.glob("page-*.png"))
    assert len(pngs) == 2 and all(p.stat().st_size > 5000 for p in pngs)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    for needle in ("Summary in plain words", "Null hypothesis", "What the p-value means",
                   "What it does not mean", "Protocol timeline", "command: tdp audit",
                   "Appendix: hashes", "page 1 of", case.fingerprint[:40],
                   manifest.member("runs/run/report.json").sha256[:40]):
        assert needle in text, needle
    facts = read_pdf(entries["report.pdf"])
    assert facts.pages >= 4 and facts.sources == {
        "runs/run/report.json": manifest.member("runs/run/report.json").sha256}
    from pypdf import PdfReader

    images = {sha256(img.data) for page in PdfReader(pdf).pages for img in page.images}
    assert len(images) == 1  # the score plot of the one audit (pages share their resources)


def _certificate(key, issuer_key, subject: str, issuer_name: str | None = None) -> bytes:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or subject)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(issuer_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_an_x509_signer_verifies_against_its_root_only(case, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    signer = owner(case)
    (tmp_path / "ca.pem").write_bytes(_certificate(ca_key, ca_key, "Court CA"))
    (tmp_path / "other.pem").write_bytes(_certificate(other_key, other_key, "Other CA"))
    (tmp_path / "owner.crt").write_bytes(_certificate(signer.key, ca_key, "Data Owner Ltd",
                                                      "Court CA"))
    bundle = tmp_path / "x509.tdp.zip"
    tdp(f"evidence pack {case.run} --canaries {case.cfile} --key {case.key} "
        f"--cert {tmp_path / 'owner.crt'} --no-pdf -o {bundle}")
    code, out = verify(bundle, "--trust", str(tmp_path / "ca.pem"))
    assert code == 0 and "issued by trusted CN=Court CA" in out, out
    fails = _fails(bundle, "--trust", str(tmp_path / "other.pem"))
    assert "manifest.sig.json :: certificate" in fails
    code, out = verify(bundle)  # no PDF and no secret: both said, neither a failure
    assert code == 0 and "secret not revealed" in out


@pytest.mark.slow
@needs_pdf
def test_demo_evidence_flag_packs_and_verifies_a_small_demo(tmp_path):
    """`tdp demo --evidence` at test size (about a minute on 2 busy cores: marked slow)."""
    from dataclasses import dataclass, field

    import harness.demo as demo
    from harness.train import TrainConfig

    @dataclass(frozen=True)
    class Small(demo.DemoConfig):
        corpus_bytes: int = 40_000
        vocab_size: int = 512
        canaries: int = 8
        canary_length: int = 6
        repeat: int = 16
        counterfactuals: int = 200
        train: TrainConfig = field(default_factory=lambda: TrainConfig(
            n_layer=1, n_embd=64, n_head=2, block_size=32, epochs=5, lr=5e-3, warmup_steps=5))

    out = tmp_path / "demo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo, "DemoConfig", Small)
        r = tdp(f"demo -o {out} --evidence")
    assert "VERDICT: VERIFIED" in r.output and "[FAIL]" not in r.output
    folder = out / "evidence"
    assert (folder / "demo.tdp.zip").is_file() and (folder / "report.pdf").is_file()
    assert "VERDICT: VERIFIED" in (folder / "verify.txt").read_text()
    run_log, _ = parse_log((out / "custody.jsonl").read_bytes())
    assert [r.command for r in run_log] == ["tdp demo", "tdp verify", "tdp evidence pack"]
    after, _ = parse_log((folder / "custody.jsonl").read_bytes())
    assert [r.command for r in after] == ["tdp evidence pack", "tdp evidence verify"]
    bundle_sha = sha256((folder / "demo.tdp.zip").read_bytes())
    assert after[0].outputs[str((folder / "demo.tdp.zip").absolute())] == bundle_sha
