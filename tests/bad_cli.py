"""Bad command lines for every `tdp` subcommand, and a driver that runs them.

Each case must exit nonzero with exactly one `Error: ...` line that names the problem (the
`expect` text) and no Python traceback. Fixtures (files, folders, a read-only folder, damaged
secrets, a fake model folder) are generated under a scratch folder; the hub is pointed at a
closed loopback port so "a hub id without network" is the same everywhere.

    python -m tests.bad_cli [--subprocess] [--json FILE] [--keep DIR]

In-process (default) runs all cases through click's test runner in one process; with
`--subprocess` each case is a real `tdp` process and tracebacks are looked for on stderr.
Run as root, the driver re-runs itself without the capabilities that let root write into any
folder (setpriv); where that is impossible the read-only cases are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

#: the hub endpoint used by every case: a closed loopback port, i.e. "no network"
NO_HUB = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Case:
    """One bad command line: `argv` (with {fixture} fields), text its error line must contain."""

    name: str
    argv: str
    expect: str
    owner: str = "cli"


@dataclass(frozen=True)
class Outcome:
    name: str
    owner: str
    exit_code: int
    traceback: bool
    error_lines: tuple[str, ...]
    expected: bool
    seconds: float
    skipped: bool = False

    @property
    def ok(self) -> bool:
        clear = len(self.error_lines) == 1 and self.expected
        return self.skipped or (self.exit_code != 0 and not self.traceback and clear)


def _canary_file(path: Path) -> Path:
    from canaries.canary_set import Plan, new_canary_set, save_canary_set
    from canaries.drbg import derive_seed
    from canaries.generators import words_spec

    cs, seed = new_canary_set(words_spec(6), 4, Plan(counterfactuals=20), derive_seed("bad", "1"))
    return save_canary_set(cs, path, seed)


def _v2_file(path: Path) -> Path:
    """A committed v2 set whose beacon round (of a local test beacon) is an hour away."""
    from canaries.canary_set import Plan, save_canary_set
    from canaries.drbg import derive_seed
    from canaries.generators import words_spec
    from harness.protocol.local_beacon import LocalTestBeacon
    from harness.protocol.pool import commit

    beacon = LocalTestBeacon.create()
    beacon.save(path.with_name("beacon.key"))
    cs, seed = commit(words_spec(6), 4, Plan(counterfactuals=20), beacon.chain, 3600,
                      derive_seed("bad-v2", "1"))
    return save_canary_set(cs, path, seed)


def _pol_log(root: Path) -> Path:
    """A real (tiny) PoL log: a few seconds of training on three short documents."""
    from harness.train import TrainConfig, train_causal_lm, train_tokenizer
    from harness.train.pol import PoLOptions

    docs = [f"document {i}: a few words about the number {i} and nothing else" for i in range(3)]
    cfg = TrainConfig(n_layer=1, n_embd=8, n_head=2, block_size=8, epochs=1, batch_size=4)
    train_causal_lm(docs, train_tokenizer(docs, 280), cfg, root / "pol-model", progress=False,
                    pol=PoLOptions(root / "pol-model" / "pol", checkpoint_every=2))
    return root / "pol-model" / "pol"


def build_fixtures(root: Path) -> dict[str, str]:
    """Write every file the cases refer to; returns {field: path}."""
    root.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {"root": root, "missing": root / "no-such-file"}
    f["c"] = _canary_file(root / "c.json")
    f["v2"] = _v2_file(root / "v2.json")
    f["beacon_key"] = root / "beacon.key"
    f["dir"] = root / "a-folder"
    f["dir"].mkdir()
    f["file"] = root / "plain.txt"
    f["file"].write_text("hello\n")
    f["empty"] = root / "empty.json"
    f["empty"].write_bytes(b"")
    f["binary"] = root / "binary.json"
    f["binary"].write_bytes(b"\xff\xfe\x00garbage\x80")
    f["jsonlist"] = root / "list.json"
    f["jsonlist"].write_text("[1, 2]\n")
    tampered = json.loads(f["c"].read_text())
    tampered["plan"]["alpha"] = 0.5
    f["tampered"] = root / "tampered.json"
    f["tampered"].write_text(json.dumps(tampered))
    for kind, body in {"notjson": "{not json", "noseed": '{"purpose": "canaries"}',
                       "nonhex": '{"seed": "zz' + "0" * 62 + '"}',
                       "short": '{"seed": "abcd"}'}.items():
        p = root / f"secret-{kind}.json"
        shutil.copy(f["c"], p)
        (root / f"secret-{kind}.json.secret").write_text(body)
        f[f"secret_{kind}"] = p
    f["orphan"] = root / "orphan.json"
    (root / "orphan.json.secret").write_text('{"seed": "00"}')
    f["linksecret"] = root / "linked.json"
    (root / "elsewhere").write_text("do not touch")
    (root / "linked.json.secret").symlink_to(root / "elsewhere")
    f["corpus_dir"] = root / "corpus"
    f["corpus_dir"].mkdir()
    for i in range(3):
        (f["corpus_dir"] / f"{i}.txt").write_text(f"document {i}\nsecond line\n")
    f["corpus_jsonl"] = root / "corpus.jsonl"
    f["corpus_jsonl"].write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(3)))
    f["bad_utf8_dir"] = root / "latin1"
    f["bad_utf8_dir"].mkdir()
    (f["bad_utf8_dir"] / "0.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    f["bad_utf8_jsonl"] = root / "latin1.jsonl"
    f["bad_utf8_jsonl"].write_bytes(b'{"text": "caf\xe9"}\n')
    f["bad_json_jsonl"] = root / "broken.jsonl"
    f["bad_json_jsonl"].write_text('{"text": "ok"}\n{broken\n')
    f["no_text_jsonl"] = root / "notext.jsonl"
    f["no_text_jsonl"].write_text('{"body": "x"}\n')
    f["old_out"] = root / "marked.jsonl"
    f["old_out"].write_text('{"text": "an earlier result"}\n')
    f["manifest_only"] = root / "fresh.jsonl"
    (root / "fresh.jsonl.manifest.json").write_text("{}")
    f["nonempty"] = root / "nonempty"
    f["nonempty"].mkdir()
    (f["nonempty"] / "keep.txt").write_text("an earlier result\n")
    f["old_report"] = root / "old-report"
    f["old_report"].mkdir()
    (f["old_report"] / "report.json").write_text('{"earlier": true}\n')
    f["pages"] = root / "pages"
    f["pages"].mkdir()
    para = "<p>" + "A paragraph long enough to host a canary, " * 6 + "</p>"
    for i in range(4):  # one page per canary
        (f["pages"] / f"page{i}.html").write_text(f"<html><body>{para * 3}</body></html>")
    f["fake_model"] = root / "fake-model"
    f["fake_model"].mkdir()
    (f["fake_model"] / "config.json").write_text("{}")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from harness.evidence.signing import write_key

    f["evkey"] = write_key(Ed25519PrivateKey.generate(), root / "owner.pem")[0]
    f["pol"] = _pol_log(root)
    f["notpol"] = root / "not-a-log"
    f["notpol"].mkdir()
    (f["notpol"] / "log.json").write_text('{"format": "something-else", "version": 1}')
    f["badpol"] = root / "broken-log"
    f["badpol"].mkdir()
    (f["badpol"] / "log.json").write_text("{not json")
    f["halfpol"] = root / "half-log"
    f["halfpol"].mkdir()
    (f["halfpol"] / "log.json").write_text('{"format": "tdp-pol-log", "version": 1}')
    f["absent_txt"] = root / "absent.txt"
    f["absent_txt"].write_text("these words were never in the training documents at all")
    f["members"] = root / "members.jsonl"
    f["members"].write_text("".join(json.dumps({"text": f"member {i}"}) + "\n" for i in range(3)))
    f["lb_bad"] = root / "bad.toml"
    f["lb_bad"].write_text("title = [\n")
    f["lb_ok"] = root / "lb.toml"
    f["lb_ok"].write_text('[[models]]\nname = "m"\nspec = "hf:x"\n[[tasks]]\n'
                          'task = "canary-rank"\ncanaries = "c"\n[canaries]\nc = "c.json"\n')
    f["lb_typo"] = root / "typo.toml"
    f["lb_typo"].write_text(f["lb_ok"].read_text().replace("[[tasks]]", "[[task]]"))
    f["lb_json"] = root / "lb-json"
    f["lb_json"].mkdir()
    (f["lb_json"] / "leaderboard.json").write_text('{"schema": "tdp-leaderboard", '
                                                  '"schema_version": 7}\n')
    f["shadow_planned"] = _planned_shadow_set(root / "shadow-planned")
    f["shadow_broken"] = root / "shadow-broken"
    f["shadow_broken"].mkdir()
    (f["shadow_broken"] / "shadow.json").write_text("{not json")
    f["two_docs"] = root / "two.jsonl"
    f["two_docs"].write_text("".join(json.dumps({"text": f"doc number {i}"}) + "\n"
                                     for i in range(2)))
    f["long_docs"] = root / "long.jsonl"
    f["long_docs"].write_text("".join(json.dumps({"text": f"document {i}: " + "word " * 40})
                                      + "\n" for i in range(4)))
    f["same_docs"] = root / "same.jsonl"
    f["same_docs"].write_text(json.dumps({"text": "one doc"}) + "\n" + json.dumps(
        {"text": "one doc"}) + "\n" + json.dumps({"text": "another doc"}) + "\n")
    f["ro"] = root / "read-only"
    f["ro"].mkdir()
    f["ro"].chmod(0o555)
    return {k: str(v) for k, v in f.items()}


def _planned_shadow_set(root: Path) -> Path:
    """A shadow set whose two models are planned but not trained (no training needed)."""
    from harness.mi.shadow_train import ShadowRequest, open_shadow_set
    from harness.train import TrainConfig

    req = ShadowRequest(("first pool text", "second pool text", "third one"), 2,
                        TrainConfig(block_size=8), b"bad-cli-shadow-seed", vocab_size=260)
    return open_shadow_set(root, req).root


_C = "--canaries {c}"
_NEW = "canaries new --count 3 --length 5 -m 20"
_INJ = f"canaries inject {_C} --corpus {{corpus_jsonl}}"
_AUD = f"audit {_C} --no-progress"
_EMB = f"canaries embed {_C} --pages {{pages}} --carrier paragraph"
_CAL = "calibrate --no-progress --model hf:{fake_model}"
_SH = "shadow train --no-progress"
_SHT = f"{_SH} --pool {{two_docs}} -o {{root}}/sht"
_SHA = ("shadow attack {shadow_planned} --model hf:{fake_model} --members {corpus_jsonl} "
        "--nonmembers {two_docs}")

CASES: tuple[Case, ...] = (
    # tdp itself
    Case("unknown command", "nosuch", "No such command"),
    Case("unknown flag", "--nosuch", "No such option"),
    # canaries new
    Case("new: no options", "canaries new", "Missing option"),
    Case("new: count 0", "canaries new --count 0 --length 5 -o {root}/n.json", "range"),
    Case("new: count not int", "canaries new --count x --length 5 -o {root}/n.json", "integer"),
    Case("new: count negative", "canaries new --count -2 --length 5 -o {root}/n.json", "range"),
    Case("new: length 0", "canaries new --count 3 --length 0 -o {root}/n.json", "range"),
    Case("new: M 0", "canaries new --count 3 --length 5 -m 0 -o {root}/n.json", "range"),
    Case("new: alpha 1.5", f"{_NEW} --alpha 1.5 -o {{root}}/n.json", "range"),
    Case("new: alpha 0", f"{_NEW} --alpha 0 -o {{root}}/n.json", "range"),
    Case("new: alpha text", f"{_NEW} --alpha lots -o {{root}}/n.json", "float"),
    Case("new: unknown score", f"{_NEW} --score nosuch -o {{root}}/n.json", "unknown score"),
    Case("new: unknown statistic", f"{_NEW} --statistic nosuch -o {{root}}/n.json",
         "unknown statistic"),
    Case("new: unknown kind", f"{_NEW} --kind bytes -o {{root}}/n.json", "bytes"),
    Case("new: unknown wordlist", f"{_NEW} --wordlist nosuch -o {{root}}/n.json",
         "unknown word list"),
    Case("new: tokens without tokenizer", f"{_NEW} --kind tokens -o {{root}}/n.json",
         "needs --tokenizer"),
    Case("new: tokenizer folder empty", f"{_NEW} --kind tokens --tokenizer {{dir}} "
         "-o {root}/n.json", "tokenizer"),
    Case("new: tokenizer hub id, no network", f"{_NEW} --kind tokens --tokenizer org/no-tok "
         "-o {root}/n.json", "no network"),
    Case("new: prefix >= length", f"{_NEW} --prefix-length 5 -o {{root}}/n.json", "shorter"),
    Case("new: prefix negative", f"{_NEW} --prefix-length -1 -o {{root}}/n.json", "range"),
    Case("new: out is a folder", f"{_NEW} -o {{dir}}", "directory"),
    Case("new: out in read-only folder", f"{_NEW} -o {{ro}}/n.json", "not writable"),
    Case("new: out under a file", f"{_NEW} -o {{file}}/n.json", "is a file"),
    Case("new: out exists", f"{_NEW} -o {{c}}", "refusing to overwrite"),
    Case("new: orphaned secret", f"{_NEW} -o {{orphan}}", "refusing to overwrite"),
    Case("new: symlinked secret, --force", f"{_NEW} --force -o {{linksecret}}", "symbolic link"),
    # canaries verify
    Case("verify-set: missing", "canaries verify {missing}", "not found"),
    Case("verify-set: a folder", "canaries verify {dir}", "directory"),
    Case("verify-set: empty file", "canaries verify {empty}", "not valid JSON"),
    Case("verify-set: binary file", "canaries verify {binary}", "not valid JSON"),
    Case("verify-set: text file", "canaries verify {file}", "not valid JSON"),
    Case("verify-set: JSON, not a set", "canaries verify {jsonlist}", "not a tdp canary-set"),
    Case("verify-set: edited", "canaries verify {tampered}", "commitment mismatch"),
    Case("verify-set: secret not JSON", "canaries verify {secret_notjson}", "not valid JSON"),
    Case("verify-set: secret without seed", "canaries verify {secret_noseed}", "no 'seed'"),
    Case("verify-set: secret not hex", "canaries verify {secret_nonhex}", "not hexadecimal"),
    Case("verify-set: secret too short", "canaries verify {secret_short}", "expected 32"),
    Case("verify-set: no argument", "canaries verify", "Missing argument"),
    # canaries inject
    Case("inject: no options", "canaries inject", "Missing option"),
    Case("inject: repeat 0", f"{_INJ} -r 0 -o {{root}}/i.jsonl", "range"),
    Case("inject: repeat negative", f"{_INJ} -r -3 -o {{root}}/i.jsonl", "range"),
    Case("inject: repeat text", f"{_INJ} -r many -o {{root}}/i.jsonl", "integer"),
    Case("inject: canaries is a folder", "canaries inject --canaries {dir} --corpus "
         "{corpus_jsonl} -o {root}/i.jsonl", "directory"),
    Case("inject: canaries missing", "canaries inject --canaries {missing} --corpus "
         "{corpus_jsonl} -o {root}/i.jsonl", "not found"),
    Case("inject: corpus missing", f"canaries inject {_C} --corpus {{missing}} -o {{root}}/i.jsonl",
         "not found"),
    Case("inject: corpus folder empty", f"canaries inject {_C} --corpus {{dir}} -o {{root}}/i",
         "no .txt"),
    Case("inject: corpus folder not UTF-8", f"canaries inject {_C} --corpus {{bad_utf8_dir}} "
         "-o {root}/i", "not UTF-8"),
    Case("inject: JSONL not UTF-8", f"canaries inject {_C} --corpus {{bad_utf8_jsonl}} "
         "-o {root}/i.jsonl", "not UTF-8"),
    Case("inject: corpus empty file", f"canaries inject {_C} --corpus {{empty}} "
         "-o {root}/i.jsonl", "no documents"),
    Case("inject: JSONL broken", f"canaries inject {_C} --corpus {{bad_json_jsonl}} "
         "-o {root}/i.jsonl", "not valid JSON"),
    Case("inject: JSONL without text", f"canaries inject {_C} --corpus {{no_text_jsonl}} "
         "-o {root}/i.jsonl", "'text'"),
    Case("inject: seed not hex", f"{_INJ} --seed xyz -o {{root}}/i.jsonl", "not hexadecimal"),
    Case("inject: seed too short", f"{_INJ} --seed abcd -o {{root}}/i.jsonl", "too short"),
    Case("inject: out exists", f"{_INJ} -o {{old_out}}", "refusing to overwrite"),
    Case("inject: manifest exists", f"{_INJ} -o {{manifest_only}}", "refusing to overwrite"),
    Case("inject: out non-empty folder", f"canaries inject {_C} --corpus {{corpus_dir}} "
         "-o {nonempty}", "refusing to overwrite"),
    Case("inject: out in read-only folder", f"{_INJ} -o {{ro}}/i.jsonl", "not writable"),
    Case("inject: out is the input", f"{_INJ} -o {{corpus_jsonl}}", "input corpus"),
    Case("inject: JSONL into a folder", f"{_INJ} -o {{dir}}", "is a folder"),
    Case("inject: folder corpus onto a file", f"canaries inject {_C} --corpus {{corpus_dir}} "
         "-o {file}", "is a file"),
    # canaries embed / carriers (embed is another engineer's command)
    Case("embed: unknown carrier", f"canaries embed {_C} --pages {{dir}} --carrier nosuch "
         "-o {root}/e", "carrier", "embed"),
    Case("embed: pages missing", f"canaries embed {_C} --pages {{missing}} --carrier paragraph "
         "-o {root}/e", "", "embed"),
    Case("embed: repeat 0", f"{_EMB} -r 0 -o {{root}}/e", "", "embed"),
    Case("embed: seed not hex", f"{_EMB} --seed xyz -o {{root}}/e", "", "embed"),
    Case("embed: out in read-only folder", f"{_EMB} -o {{ro}}/e", "", "embed"),
    Case("carriers: extra argument", "canaries carriers extra", "unexpected extra argument"),
    # audit
    Case("audit: no options", "audit", "Missing option"),
    Case("audit: empty model spec", f"{_AUD} --model '' -o {{root}}/r", "empty model spec"),
    Case("audit: unknown backend", f"{_AUD} --model nosuch:x -o {{root}}/r", "unknown backend"),
    Case("audit: model folder missing", f"{_AUD} --model hf:./no-such-model -o {{root}}/r",
         "not found"),
    Case("audit: model folder not a model", f"{_AUD} --model hf:{{dir}} -o {{root}}/r",
         "no config.json"),
    Case("audit: model folder broken", f"{_AUD} --model hf:{{fake_model}} -o {{root}}/r",
         "cannot load model"),
    Case("audit: bad dtype", f"{_AUD} --model hf:{{fake_model}},dtype=float64 -o {{root}}/r",
         "dtype"),
    Case("audit: batch_size 0", f"{_AUD} --model hf:{{fake_model}},batch_size=0 -o {{root}}/r",
         "batch_size"),
    Case("audit: unknown backend option", f"{_AUD} --model hf:{{fake_model}},nosuch=1 "
         "-o {root}/r", "unknown"),
    Case("audit: option not key=value", f"{_AUD} --model hf:{{fake_model}},dtype -o {{root}}/r",
         "key=value"),
    Case("audit: hub id, no network", f"{_AUD} --model hf:org/no-such-model -o {{root}}/r",
         "no network"),
    Case("audit: reference unknown backend", f"{_AUD} --model hf:{{fake_model}} "
         "--reference nosuch:x -o {root}/r", "unknown backend"),
    Case("audit: canaries is a folder", "audit --canaries {dir} --model hf:{fake_model} "
         "-o {root}/r", "directory"),
    Case("audit: canaries missing", "audit --canaries {missing} --model hf:{fake_model} "
         "-o {root}/r", "not found"),
    Case("audit: canaries not JSON", "audit --canaries {file} --model hf:{fake_model} "
         "-o {root}/r", "not valid JSON"),
    Case("audit: unknown task", f"{_AUD} --model hf:{{fake_model}} --task nosuch -o {{root}}/r",
         "unknown task"),
    Case("audit: task option not key=value", f"{_AUD} --model hf:{{fake_model}} --option k "
         "-o {root}/r", "key=value"),
    Case("audit: unknown task option", f"{_AUD} --model hf:{{fake_model}} --option nosuch=1 "
         "-o {root}/r", "unknown task options"),
    Case("audit: task option wrong type", f"{_AUD} --model hf:{{fake_model}} --option min_k=abc "
         "-o {root}/r", "min_k"),
    Case("audit: --no-cache with --cache-dir", f"{_AUD} --model hf:{{fake_model}} --no-cache "
         "--cache-dir {root}/cc -o {root}/r", "contradict"),
    Case("audit: --ray-address alone", f"{_AUD} --model hf:{{fake_model}} --ray-address x "
         "-o {root}/r", "--ray-workers"),
    Case("audit: cache chunk 0", f"{_AUD} --model hf:{{fake_model}} --cache-chunk 0 -o {{root}}/r",
         "range"),
    Case("audit: ray workers negative", f"{_AUD} --model hf:{{fake_model}} --ray-workers -1 "
         "-o {root}/r", "range"),
    Case("audit: out in read-only folder", f"{_AUD} --model hf:{{fake_model}} -o {{ro}}/r",
         "not writable"),
    Case("audit: out holds a report", f"{_AUD} --model hf:{{fake_model}} -o {{old_report}}",
         "already holds a report"),
    Case("audit: out is a file", f"{_AUD} --model hf:{{fake_model}} -o {{file}}", "is a file"),
    Case("audit: cache in read-only folder", f"{_AUD} --model hf:{{fake_model}} "
         "--cache-dir {ro}/cache -o {root}/r", "not writable"),
    # demo, tasks
    Case("demo: seed not int", "demo --seed x -o {root}/d", "integer"),
    Case("demo: out in read-only folder", "demo -o {ro}/d", "not writable"),
    Case("demo: out is a file", "demo -o {file}", "is a file"),
    Case("tasks: extra argument", "tasks extra", "unexpected extra argument"),
    # serve
    Case("serve: no model", "serve", "Missing argument"),
    Case("serve: port out of range", "serve hf:{fake_model} --port 70000", "range"),
    Case("serve: port text", "serve hf:{fake_model} --port http", "integer"),
    Case("serve: unknown backend", "serve nosuch:x", "unknown backend"),
    Case("serve: folder not a model", "serve hf:{dir}", "no config.json"),
    Case("serve: hub id, no network", "serve hf:org/no-such-model", "no network"),
    # calibrate
    Case("calibrate: 0 audits", f"{_CAL} -n 0 -o {{root}}/cal", "range"),
    Case("calibrate: k 0", f"{_CAL} -k 0 -o {{root}}/cal", "range"),
    Case("calibrate: m negative", f"{_CAL} -m -4 -o {{root}}/cal", "range"),
    Case("calibrate: unknown statistic", f"{_CAL} --statistic nosuch -o {{root}}/cal", "nosuch"),
    Case("calibrate: unknown score", f"{_CAL} --score nosuch -o {{root}}/cal", "unknown score"),
    Case("calibrate: alpha 2", f"{_CAL} --alpha 2 -o {{root}}/cal", "range"),
    Case("calibrate: rank with k 4", f"{_CAL} --statistic rank -k 4 -o {{root}}/cal", "k=1"),
    Case("calibrate: unknown backend", "calibrate --model nosuch:x -o {root}/cal",
         "unknown backend"),
    Case("calibrate: hub id, no network", "calibrate --model hf:org/no-such -o {root}/cal",
         "no network"),
    Case("calibrate: out in read-only folder", f"{_CAL} -o {{ro}}/cal", "not writable"),
    # simulate
    Case("simulate: repeats not ints", "simulate --repeats a,b -o {root}/sim", "integers"),
    Case("simulate: repeats 0", "simulate --repeats 0,1 -o {root}/sim", ">= 1"),
    Case("simulate: unknown kind", "simulate --kinds words,bytes -o {root}/sim "
         "--work-dir {root}/work", "kinds"),
    Case("simulate: groups 0", "simulate --groups 0 -o {root}/sim", "range"),
    Case("simulate: alpha 0", "simulate --alpha 0 -o {root}/sim", "range"),
    Case("simulate: unknown preset", "simulate --preset huge -o {root}/sim", "huge"),
    Case("simulate: out in read-only folder", "simulate -o {ro}/sim --work-dir {root}/work",
         "not writable"),
    # survival (another engineer's command)
    Case("survival: no manifest", "survival -o {root}/s", "Missing option", "survival"),
    Case("survival: manifest missing", "survival --manifest {missing} -o {root}/s", "",
         "survival"),
    Case("survival: manifest not JSON", "survival --manifest {file} -o {root}/s", "", "survival"),
    Case("survival: unknown extractor", "survival --manifest {c} --extractor nosuch "
         "-o {root}/s", "nosuch", "survival"),
    Case("survival: canary file as manifest", "survival --manifest {c} -o {root}/s",
         "not a tdp embed manifest", "survival"),
    # verify (the integrator's command)
    Case("verify: report missing", "verify {missing}", "not found", "verify"),
    Case("verify: folder without report", "verify {dir}", "not found", "verify"),
    Case("verify: not JSON", "verify {file}", "", "verify"),
    Case("verify: empty file", "verify {empty}", "", "verify"),
    Case("verify: JSON, not a report", "verify {old_report}", "not a tdp report", "verify"),
    Case("verify: tolerance text", "verify {old_report} --tolerance abc", "float", "verify"),
    Case("verify: negative sample", "verify {old_report} --rescore -1", "range", "verify"),
    Case("verify: short commitment", "verify {old_report} --commitment abc", "64 hex", "verify"),
    Case("verify: no-rescore and model", "verify {old_report} --no-rescore --model hf:x",
         "contradicts", "verify"),
    # protocol v2 steps
    Case("new: unknown beacon chain", f"{_NEW} --beacon drand:nosuch -o {{root}}/b.json",
         "nosuch"),
    Case("new: round named", f"{_NEW} --beacon drand:quicknet:5 -o {{root}}/b.json", "not named"),
    Case("new: reference score, none committed", f"{_NEW} --score ref_ratio -o {{root}}/b.json",
         "--reference"),
    Case("new: negative beacon delay", f"{_NEW} --beacon-delay -1 -o {{root}}/b.json", "range"),
    Case("timestamp: v1 set", "canaries timestamp {c}", "v1 canary set"),
    Case("timestamp: missing file", "canaries timestamp {missing}", "not found"),
    Case("timestamp: reply without chain", "canaries timestamp {v2} --reply {file}", "--chain"),
    Case("timestamp: reply is not one", "canaries timestamp {v2} --reply {file} --chain {file}",
         ""),
    Case("assign: v1 set", "canaries assign {c} --local-beacon {beacon_key}", "only v2"),
    Case("assign: no round given", "canaries assign {v2}", "give the round"),
    Case("assign: another round", "canaries assign {v2} --beacon drand:quicknet:7 "
         "--randomness 00 --signature 00", "pins round"),
    Case("assign: round not out yet", "canaries assign {v2} --local-beacon {beacon_key}",
         "not published until"),
    Case("assign: bad hex", "canaries assign {v2} --randomness zz --signature zz", ""),
    Case("audit: v2 set not assigned", "audit --canaries {v2} --model hf:{fake_model} "
         "-o {root}/a2 --no-progress", "no canaries yet"),
    # evidence bundles
    Case("evidence keygen: no out", "evidence keygen", "Missing option"),
    Case("evidence keygen: out exists", "evidence keygen -o {file}", "refusing to overwrite"),
    Case("evidence keygen: out is a folder", "evidence keygen -o {dir}", "directory"),
    Case("evidence pack: no run folder", "evidence pack --key {evkey} -o {root}/b.zip",
         "Missing argument"),
    Case("evidence pack: run folder missing", "evidence pack {missing} --key {evkey} "
         "-o {root}/b.zip", "does not exist"),
    Case("evidence pack: no key", "evidence pack {old_report} -o {root}/b.zip", "Missing option"),
    Case("evidence pack: key is not a key", "evidence pack {old_report} --key {file} "
         "-o {root}/b.zip", "not a usable private key"),
    Case("evidence pack: folder without report", "evidence pack {dir} --key {evkey} "
         "-o {root}/b.zip", "report not found"),
    Case("evidence pack: not a tdp report", "evidence pack {old_report} --key {evkey} "
         "-o {root}/b.zip", "not a tdp report"),
    Case("evidence pack: out exists", "evidence pack {old_report} --key {evkey} -o {file}",
         "refusing to overwrite"),
    Case("evidence pack: --tsa without chain", "evidence pack {old_report} --key {evkey} "
         "--tsa http://127.0.0.1:9 -o {root}/b.zip", "--tsa-chain"),
    Case("evidence pack: no-pdf and pdf-out", "evidence pack {old_report} --key {evkey} "
         "--no-pdf --pdf-out {root}/r.pdf -o {root}/b.zip", "contradicts"),
    Case("evidence verify: missing", "evidence verify {missing}", "does not exist"),
    Case("evidence verify: a folder", "evidence verify {dir}", "directory"),
    Case("evidence verify: not a zip", "evidence verify {file}", "not a readable zip"),
    Case("evidence verify: bad signer", "evidence verify {file} --signer xyz", "fingerprint"),
    Case("evidence verify: short commitment", "evidence verify {file} --commitment abc",
         "64 hex"),
    Case("evidence verify: rescore without model", "evidence verify {file} --rescore 5",
         "--model"),
    # pol verify, repudiate (proof-of-learning logs and the PoR forger)
    Case("pol verify: no argument", "pol verify", "Missing argument"),
    Case("pol verify: log missing", "pol verify {missing}", "no PoL log"),
    Case("pol verify: folder without a log", "pol verify {dir}", "no PoL log"),
    Case("pol verify: log not JSON", "pol verify {badpol}", "not valid JSON"),
    Case("pol verify: another format", "pol verify {notpol}", "not a PoL log"),
    Case("pol verify: fields missing", "pol verify {halfpol}", "malformed PoL log"),
    Case("pol verify: tolerance negative", "pol verify {pol} --tolerance -1", "range"),
    Case("pol verify: tolerance text", "pol verify {pol} --tolerance small", "float"),
    Case("pol verify: factor below 1", "pol verify {pol} --factor 0.5", "range"),
    Case("pol verify: top-q 0", "pol verify {pol} --top-q 0", "range"),
    Case("pol verify: top-q and sample", "pol verify {pol} --top-q 2 --sample 2", "contradict"),
    Case("pol verify: json exists", "pol verify {pol} --json {file}", "refusing to overwrite"),
    Case("repudiate: no options", "repudiate", "Missing option"),
    Case("repudiate: log missing", "repudiate --log {missing} --target {absent_txt} "
         "-o {root}/por", "no PoL log"),
    Case("repudiate: target missing", "repudiate --log {pol} --target {root}/no.txt "
         "-o {root}/por", "no such file"),
    Case("repudiate: target corpus broken", "repudiate --log {pol} --target {bad_json_jsonl} "
         "-o {root}/por", "not valid JSON"),
    Case("repudiate: target not in the data", "repudiate --log {pol} --target {absent_txt} "
         "-o {root}/por", "does not occur"),
    Case("repudiate: kappa 1", "repudiate --log {pol} --target {absent_txt} --kappa 1 "
         "-o {root}/por", "range"),
    Case("repudiate: mu 0", "repudiate --log {pol} --target {absent_txt} --mu 0 -o {root}/por",
         "range"),
    Case("repudiate: lambda 0", "repudiate --log {pol} --target {absent_txt} --lambda 0 "
         "-o {root}/por", "range"),
    Case("repudiate: out exists", "repudiate --log {pol} --target {absent_txt} -o {nonempty}",
         "refusing to overwrite"),
    Case("repudiate: out in read-only folder", "repudiate --log {pol} --target {absent_txt} "
         "-o {ro}/por", "not writable"),
    # audit on labelled data (mi-benchmark: no canary set)
    Case("audit: canary task without canaries", "audit --model hf:{fake_model} -o {root}/r "
         "--task canary-rank", "needs --canaries"),
    Case("audit: mi-benchmark given canaries", f"{_AUD} --model hf:{{fake_model}} "
         "--task mi-benchmark --option data={members} -o {root}/r", "takes no canary set"),
    Case("audit: mi-benchmark without data", "audit --model hf:{fake_model} --task mi-benchmark "
         "-o {root}/r", "either data=SOURCE"),
    Case("audit: mi-benchmark unknown score", "audit --model hf:{fake_model} --task mi-benchmark "
         "--option data={members} --option scores=nosuch -o {root}/r", "unknown scores"),
    Case("audit: mi-benchmark data missing", "audit --model hf:{fake_model} --task mi-benchmark "
         "--option members={missing}.jsonl --option nonmembers={members} -o {root}/r",
         "no such file"),
    Case("audit: mi-benchmark hub data, no network", "audit --model hf:{fake_model} "
         "--task mi-benchmark --option data=org/no-such-data -o {root}/r", "no network"),
    # leaderboard
    Case("leaderboard: no subcommand argument", "leaderboard run", "Missing argument"),
    Case("leaderboard: config missing", "leaderboard run {missing} -o {root}/lb", "no such config"),
    Case("leaderboard: config is a folder", "leaderboard run {dir} -o {root}/lb", "is a folder"),
    Case("leaderboard: config not TOML", "leaderboard run {lb_bad} -o {root}/lb", "not valid TOML"),
    Case("leaderboard: config not UTF-8", "leaderboard run {binary} -o {root}/lb", "not UTF-8"),
    Case("leaderboard: unknown table", "leaderboard run {lb_typo} -o {root}/lb", "unknown keys"),
    Case("leaderboard: no --out", "leaderboard run {lb_ok}", "Missing option"),
    Case("leaderboard: out is a file", "leaderboard run {lb_ok} -o {file}", "is a file"),
    Case("leaderboard: out holds other things", "leaderboard run {lb_ok} -o {nonempty}",
         "holds no leaderboard"),
    Case("leaderboard: out in read-only folder", "leaderboard run {lb_ok} -o {ro}/lb",
         "not writable"),
    Case("leaderboard: workers 0", "leaderboard run {lb_ok} -o {root}/lb --workers 0", "range"),
    Case("leaderboard: --no-cache with --cache-dir", "leaderboard run {lb_ok} -o {root}/lb "
         "--no-cache --cache-dir {root}/cc", "contradict"),
    Case("leaderboard: --ray-address alone", "leaderboard run {lb_ok} -o {root}/lb "
         "--ray-address x", "needs --ray"),
    Case("leaderboard: --ray with --workers", "leaderboard run {lb_ok} -o {root}/lb --ray "
         "--workers 2", "contradict"),
    Case("leaderboard: build without [build]", "leaderboard build {lb_ok}", "no [build] table"),
    Case("leaderboard: build config missing", "leaderboard build {missing}", "no such config"),
    Case("verify: leaderboard of another schema", "verify {lb_json}", "schema_version 7"),
    Case("inject: v2 set not assigned", "canaries inject --canaries {v2} --corpus {corpus_jsonl} "
         "-o {root}/i2.jsonl", "no canaries yet"),
    # shadow sets (LiRA / RMIA)
    Case("shadow train: no options", "shadow train", "Missing option"),
    Case("shadow train: pool missing", f"{_SH} --pool {{missing}} -o {{root}}/sh", "not found"),
    Case("shadow train: 0 models", f"{_SH} --pool {{two_docs}} -n 0 -o {{root}}/sh", "range"),
    Case("shadow train: seed not hex", f"{_SHT} --seed xyz", "not hexadecimal"),
    Case("shadow train: seed too short", f"{_SHT} --seed abcd", "too short"),
    Case("shadow train: heads do not divide", f"{_SHT} --n-embd 30 --n-head 4", "divisible"),
    Case("shadow train: lr 0", f"{_SHT} --lr 0", "range"),
    Case("shadow train: population in the pool", f"{_SH} --pool {{corpus_jsonl}} -o {{root}}/sh "
         "--population {corpus_jsonl}", "also in the pool"),
    Case("shadow train: repeated text", f"{_SH} --pool {{same_docs}} -o {{root}}/sh",
         "repeats a text"),
    Case("shadow train: text longer than context", f"{_SH} --pool {{long_docs}} --block-size 8 "
         "-o {root}/sh", "context"),
    Case("shadow train: half shorter than a block", f"{_SHT} --block-size 64",
         "one training block"),
    Case("shadow train: out is a file", f"{_SH} --pool {{two_docs}} -o {{file}}", "is a file"),
    Case("shadow train: out holds other files", f"{_SH} --pool {{two_docs}} -o {{nonempty}}",
         "not a shadow set"),
    Case("shadow train: out in read-only folder", f"{_SH} --pool {{two_docs}} -o {{ro}}/sh",
         "not writable"),
    Case("shadow train: another plan in the folder", f"{_SH} --pool {{two_docs}} "
         "-o {shadow_planned}", "differs in"),
    Case("shadow train: --init folder missing", f"{_SHT} --init {{missing}}", "tokenizer"),
    Case("shadow show: missing", "shadow show {missing}", "not found"),
    Case("shadow show: not a shadow set", "shadow show {dir}", "not a shadow set"),
    Case("shadow show: manifest not JSON", "shadow show {shadow_broken}", "not valid JSON"),
    Case("shadow timestamp: not trained", "shadow timestamp {shadow_planned} --local-tsa "
         "{root}/tsa", "incomplete"),
    Case("shadow timestamp: --reply, untrained set", "shadow timestamp {shadow_planned} "
         "--reply {file}", "incomplete"),
    Case("shadow attack: unknown attack", f"{_SHA} --attack lira -o {{root}}/att",
         "unknown attack"),
    Case("shadow attack: members missing", "shadow attack {shadow_planned} --model hf:x "
         "--members {missing} --nonmembers {corpus_jsonl} -o {root}/att", "not found"),
    Case("shadow attack: model broken", f"{_SHA} -o {{root}}/att", "cannot load model"),
    Case("shadow attack: rmia without population", f"{_SHA} --attack rmia -o {{root}}/att",
         "needs a population"),
    Case("shadow attack: out exists", f"{_SHA} -o {{old_report}}", "refusing to overwrite"),
)


def case_env(root: Path) -> dict[str, str]:
    """Environment of every case: caches inside `root`, the hub unreachable."""
    return {"TDP_CACHE_DIR": str(root / "cache"), "HF_HOME": str(root / "hf"),
            "XDG_CACHE_HOME": str(root / "xdg"), "HOME": str(root), "HF_ENDPOINT": NO_HUB,
            "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}


def _outcome(case: Case, code: int, text: str, crashed: bool, seconds: float) -> Outcome:
    errors = tuple(ln for ln in text.splitlines() if ln.startswith("Error:"))
    expected = len(errors) == 1 and case.expect.lower() in errors[0].lower()
    traceback = crashed or "Traceback (most recent call last)" in text
    return Outcome(case.name, case.owner, code, traceback, errors, expected, seconds)


def run_in_process(case: Case, fx: dict[str, str]) -> Outcome:
    from click.testing import CliRunner

    from harness.cli import main

    t0 = time.perf_counter()
    r = CliRunner().invoke(main, shlex.split(case.argv.format(**fx)), catch_exceptions=True)
    crashed = r.exception is not None and not isinstance(r.exception, SystemExit)
    return _outcome(case, r.exit_code, r.output, crashed, time.perf_counter() - t0)


def run_subprocess(case: Case, fx: dict[str, str], timeout: float = 300) -> Outcome:
    argv = [sys.executable, "-c", "from harness.cli import main; main()",
            *shlex.split(case.argv.format(**fx))]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           cwd=fx["root"], env={**os.environ, **case_env(Path(fx["root"]))})
    except subprocess.TimeoutExpired:
        return Outcome(case.name, case.owner, -1, False, ("(timed out)",), False, timeout)
    return _outcome(case, p.returncode, p.stdout + p.stderr, False, time.perf_counter() - t0)


def run_all(root: Path, subprocesses: bool) -> list[Outcome]:
    """Build the fixtures under `root` and run every case (as the current user)."""
    os.environ.update(case_env(root))  # before huggingface_hub reads HF_ENDPOINT
    fx = build_fixtures(root)
    os.chdir(root)
    run = run_subprocess if subprocesses else run_in_process
    read_only = not os.access(fx["ro"], os.W_OK)  # False for root with CAP_DAC_OVERRIDE
    return [run(case, fx) if read_only or "{ro}" not in case.argv
            else Outcome(case.name, case.owner, 0, False, (), False, 0.0, skipped=True)
            for case in CASES]


def run_driver(args: list[str], timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run this driver in a fresh process and scratch folder (it changes its environment).

    Run as root, the process loses the capabilities that ignore file modes (via util-linux's
    setpriv): root writes into a read-only folder anyway, without CAP_DAC_OVERRIDE (and its
    kin) it obeys the mode bits like any user.
    """
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    as_root = os.geteuid() == 0 and shutil.which("setpriv")
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", repo)}
    scratch = tempfile.mkdtemp(prefix="tdp-bad-cli-")
    try:
        return subprocess.run(
            [*(drop if as_root else []), sys.executable, "-m", "tests.bad_cli",
             "--here", scratch, *args],
            env=env, cwd=repo, capture_output=True, text=True, timeout=timeout,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def table(outcomes: list[Outcome]) -> str:
    rows = ["| case | owner | exit | traceback | error line |", "|---|---|---:|---|---|"]
    for o in outcomes:
        line = o.error_lines[0][:90] if o.error_lines else "(none)"
        mark = " (skipped: folder not read-only)" if o.skipped else "" if o.ok else " **FAIL**"
        rows.append(f"| {o.name}{mark} | {o.owner} | {o.exit_code} | "
                    f"{'yes' if o.traceback else 'no'} | {line.replace('|', '/')} |")
    tb = sum(o.traceback for o in outcomes)
    bad = sum(not o.ok for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    rows.append(f"\n{len(outcomes)} bad command lines: {tb} tracebacks, {bad} without one "
                f"clear `Error:` line, {skipped} skipped")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subprocess", action="store_true", help="one real process per case")
    ap.add_argument("--json", type=Path, help="write the outcomes here as JSON")
    ap.add_argument("--here", type=Path, help=argparse.SUPPRESS)  # run as is, fixtures here
    ap.add_argument("--print-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.here is None:
        p = run_driver(["--subprocess"] * args.subprocess + ["--print-json"])
        sys.stderr.write(p.stderr[-5000:])
        outcomes = [Outcome(**{**d, "error_lines": tuple(d["error_lines"])})
                    for d in json.loads(p.stdout.splitlines()[-1])]
    else:
        outcomes = run_all(args.here.resolve(), args.subprocess)
    if args.print_json:
        print(json.dumps([asdict(o) for o in outcomes]))
        return
    print(table(outcomes))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))


if __name__ == "__main__":
    main()
