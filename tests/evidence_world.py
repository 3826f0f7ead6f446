"""A small honest case made through the real `tdp` commands (so every step is in the custody
log), packed into a bundle; and helpers to take a bundle apart and put it back together."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, replace
from pathlib import Path

from click.testing import CliRunner

from canaries.canary_set import load_canary_set
from harness.cli import main
from harness.evidence.bundle import (
    SIGNATURE,
    TIMESTAMP,
    Manifest,
    read_bundle,
    sha256,
    write_bundle,
)
from harness.evidence.signing import Signer, load_signer, sign
from harness.protocol.beacon import round_time
from harness.protocol.local_beacon import LocalTestBeacon


@dataclass(frozen=True)
class Case:
    root: Path
    case: Path  # the owner's folder: canary file, run folder
    run: Path
    cfile: Path
    model: Path
    key: Path
    fingerprint: str
    bundle: Path
    tsa: Path


def tdp(args: str, ok: bool = True):
    r = CliRunner().invoke(main, shlex.split(args), catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, r.output
    return r


def make_case(root: Path, model: Path) -> Case:
    case, tsa = root / "case", root / "tsa"
    case.mkdir(parents=True)
    beacon_key = root / "beacon.key"
    LocalTestBeacon.create().save(beacon_key)
    cfile = case / "canaries.json"
    tdp(f"canaries new -k 4 -l 6 --prefix-length 2 -m 30 --alpha 0.05 --beacon-delay 3 "
        f"--local-beacon {beacon_key} -o {cfile}")
    tdp(f"canaries timestamp {cfile} --local-tsa {tsa}")
    cs = load_canary_set(cfile)
    chain = LocalTestBeacon.load(beacon_key).chain
    time.sleep(max(0.0, round_time(chain, cs.beacon["round"]) - time.time() + 0.05))
    tdp(f"canaries assign {cfile} --local-beacon {beacon_key}")
    run = case / "run"
    tdp(f"audit --canaries {cfile} --model hf:{model} -o {run} --no-progress --no-cache")
    tdp(f"verify {run} --canaries {cfile} --rescore 5 --rescore-seed 1")
    key = root / "keys" / "owner.pem"
    out = tdp(f"evidence keygen -o {key}").output
    fingerprint = out.split("fingerprint:")[1].split()[0]
    bundle = root / "out" / "case.tdp.zip"
    tdp(f"evidence pack {run} --canaries {cfile} --key {key} --reveal-secret "
        f"--local-tsa {tsa} --author 'test owner' -o {bundle}")
    return Case(root, case, run, cfile, model, key, fingerprint, bundle, tsa)


def unpack(bundle: Path) -> tuple[dict[str, bytes], Manifest]:
    entries = dict(read_bundle(bundle).entries)
    return entries, Manifest.from_bytes(entries["manifest.json"])


def repack(path: Path, entries: dict[str, bytes], order: list[str] | None = None) -> Path:
    """Write `entries` as they are (no re-signing): what an editor of the archive does."""
    names = order or list(entries)
    seal = {n: entries[n] for n in names if n in (SIGNATURE, TIMESTAMP)}
    members = {n: entries[n] for n in names if n not in ("manifest.json", SIGNATURE, TIMESTAMP)}
    write_bundle(path, entries["manifest.json"], seal, members, (2026, 1, 1, 0, 0, 0))
    return path


def reseal(path: Path, entries: dict[str, bytes], manifest: Manifest, signer: Signer,
           archive_order: list[str] | None = None) -> Path:
    """Re-list every member with its current hash and sign again (no timestamp): what a forger
    with a key does. The archive follows the manifest unless `archive_order` is given."""
    members = tuple(replace(m, sha256=sha256(entries[m.name]), size=len(entries[m.name]))
                    for m in manifest.members if m.name in entries)
    info = {"algorithm": "ed25519", "public_key_sha256": signer.fingerprint}
    mbytes = replace(manifest, members=members, signer=info, extra={}).to_bytes()
    order = archive_order or [m.name for m in members]
    body = {n: entries[n] for n in order if n in {m.name for m in members}}
    write_bundle(path, mbytes, {SIGNATURE: sign(mbytes, signer)}, body, (2026, 1, 1, 0, 0, 0))
    return path


def owner(case: Case) -> Signer:
    return load_signer(case.key)


def verify(bundle: Path, *extra: str):
    r = CliRunner().invoke(main, ["evidence", "verify", str(bundle), *extra],
                           catch_exceptions=False)
    return r.exit_code, r.output


def failed_lines(output: str) -> list[str]:
    return [ln.strip() for ln in output.splitlines() if ln.strip().startswith("[FAIL]")]


def json_bytes(d) -> bytes:
    return (json.dumps(d, indent=1, sort_keys=True) + "\n").encode()
