"""Model identity by content: one model saved many ways has one identity; any change of a
stored tensor, or of the tokenizer's mapping, gives another; state and junk files give none."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from tiny_lm import build_tiny_lm, serving, tiny_lm_dir

from canaries.drbg import HashDRBG
from canaries.generators import (
    GeneratorError,
    GeneratorSpec,
    draw_canaries,
    load_tokenizer,
    spec_tokenizer_match,
    tokens_spec,
)
from canaries.tokenizer_identity import tokenizer_digest, tokenizer_sha256
from harness.audit import audit_seed
from harness.backends import BackendError, Fingerprint
from harness.backends import tensor_digest as td
from harness.backends.hf import HFBackend
from harness.backends.identity import (
    ModelIdentity,
    identity_of_spec,
    weight_files,
    weights_digest,
)
from harness.backends.tensor_digest import legacy_weights_sha256

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_lm_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def state(tiny) -> dict[str, torch.Tensor]:
    """The tiny model's state dict, with the tied head aliasing the input embedding."""
    from transformers import AutoModelForCausalLM

    sd = AutoModelForCausalLM.from_pretrained(tiny).state_dict()
    assert sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr()
    return sd


def _folder(tiny: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        shutil.copy(tiny / name, dest / name)
    return dest


def _save_bin_shards(sd: dict[str, torch.Tensor], dest: Path, per_shard: int) -> None:
    """Sharded pytorch checkpoint with an index, tied tensors kept in one shard (as hub's
    splitter does), so the shard keeps the alias."""
    names = [n for n in sorted(sd) if n != "lm_head.weight"]
    chunks = [names[i : i + per_shard] for i in range(0, len(names), per_shard)]
    weight_map = {}
    for i, chunk in enumerate(chunks):
        shard = f"pytorch_model-{i + 1:05d}-of-{len(chunks):05d}.bin"
        if "transformer.wte.weight" in chunk:
            chunk = [*chunk, "lm_head.weight"]
        torch.save({n: sd[n] for n in chunk}, dest / shard)
        weight_map.update(dict.fromkeys(chunk, shard))
    index = {"metadata": {}, "weight_map": weight_map}
    (dest / "pytorch_model.bin.index.json").write_text(json.dumps(index))


@pytest.fixture(scope="module")
def layouts(tiny, state, tmp_path_factory) -> dict[str, Path]:
    """One model saved five ways, one of them beside junk weight-like files."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("layouts")
    model = AutoModelForCausalLM.from_pretrained(tiny)
    out = {"single": tiny}
    out["sharded"] = _folder(tiny, root / "sharded")
    model.save_pretrained(out["sharded"], max_shard_size="20KB")
    out["bin"] = _folder(tiny, root / "bin")
    torch.save(state, out["bin"] / "pytorch_model.bin")  # both tied names, one storage
    out["bin_sharded"] = _folder(tiny, root / "bin_sharded")
    _save_bin_shards(state, out["bin_sharded"], per_shard=7)
    out["junk"] = _folder(tiny, root / "junk")
    shutil.copy(tiny / "model.safetensors", out["junk"] / "model.safetensors")
    (out["junk"] / "extra.bin").write_bytes(os.urandom(64))
    torch.save({"x": torch.randn(4)}, out["junk"] / "notes.pt")
    return out


def test_one_model_saved_five_ways_has_one_identity(layouts):
    assert len(weight_files(layouts["sharded"])) > 2
    assert len(weight_files(layouts["bin_sharded"])) > 2
    assert [p.name for p in weight_files(layouts["junk"])] == ["model.safetensors"]
    ids = {name: identity_of_spec(f"hf:{path}") for name, path in layouts.items()}
    assert len(set(ids.values())) == 1, ids
    # the referee's attack: a junk file gave the old file-bytes hash a fresh value
    assert legacy_weights_sha256(layouts["junk"]) != legacy_weights_sha256(layouts["single"])
    ident = ids["single"]
    assert ident.scheme == "tensors-v1" and len(ident.weights) == 64 and len(ident.tokenizer) == 64


def test_changed_or_added_tensor_changes_the_identity(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    base = identity_of_spec(f"hf:{tiny}")
    sd = load_file(tiny / "model.safetensors")
    changed = _folder(tiny, tmp_path / "changed")
    sd["transformer.h.0.mlp.c_fc.weight"][3, 5] += 1e-3
    save_file(sd, changed / "model.safetensors", metadata={"format": "pt"})
    assert identity_of_spec(f"hf:{changed}").weights != base.weights
    # a tensor the model ignores changes the digest, so the backend refuses such a checkpoint
    extra = _folder(tiny, tmp_path / "extra")
    save_file({**load_file(tiny / "model.safetensors"), "junk.weight": torch.randn(3)},
              extra / "model.safetensors", metadata={"format": "pt"})
    assert identity_of_spec(f"hf:{extra}").weights != base.weights
    with pytest.raises(BackendError, match="unexpected keys.*junk.weight"):
        HFBackend(str(extra), dtype="float32", device="cpu")


def test_equal_values_are_not_folded_only_aliases(state, tmp_path):
    """Two LayerNorm weights equal at init are two tensors: dropping one changes the digest."""
    a, b = "transformer.h.0.ln_1.weight", "transformer.h.1.ln_1.weight"
    assert torch.equal(state[a], state[b])
    full, short = tmp_path / "full.bin", tmp_path / "short.bin"
    torch.save({a: state[a].clone(), b: state[b].clone()}, full)
    torch.save({a: state[a].clone()}, short)
    assert weights_digest([full], tmp_path) != weights_digest([short], tmp_path)


def test_pre_zip_torch_format_reads_whole_and_agrees(state, tmp_path):
    names = ("transformer.wte.weight", "lm_head.weight", "transformer.ln_f.bias")
    small = {k: state[k] for k in names}
    torch.save(small, tmp_path / "zip.bin")
    torch.save(small, tmp_path / "old.bin", _use_new_zipfile_serialization=False)
    cache = tmp_path / "cache"
    old = weights_digest([tmp_path / "old.bin"], cache)
    assert old == weights_digest([tmp_path / "zip.bin"], cache)


def test_bf16_load_of_fp32_checkpoint_keeps_identity(tiny):
    fp32 = HFBackend(str(tiny), dtype="float32", device="cpu").fingerprint()
    bf16 = HFBackend(str(tiny), dtype="bfloat16", device="cpu").fingerprint()
    assert bf16.identity_digest() == fp32.identity_digest()
    assert bf16.digest() != fp32.digest()  # the cache key still tells the numbers apart


def test_identity_of_spec_agrees_with_the_hf_fingerprint(tiny):
    fp = HFBackend(str(tiny), dtype="float32", device="cpu").fingerprint()
    ident = identity_of_spec(f"hf:{tiny}")
    assert fp.model_identity() == ident and fp.identity_digest() == ident.digest()
    assert fp.weights_sha256 == ident.weights and fp.tokenizer_sha256 == ident.tokenizer
    assert ModelIdentity.from_dict(ident.to_dict()) == ident


def test_honest_audit_seed_is_the_same_for_two_layouts(layouts):
    commitment = "5e" * 32
    seeds = {
        name: audit_seed(commitment, HFBackend(str(layouts[name]), device="cpu").fingerprint())
        for name in ("single", "bin", "junk")
    }
    assert len(set(seeds.values())) == 1


@pytest.fixture(scope="module")
def stateful_tok(tiny, tmp_path_factory) -> Path:
    """The tiny tokenizer with padding and truncation written into its tokenizer.json."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("stateful")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["truncation"] = {"direction": "Right", "max_length": 8, "strategy": "LongestFirst",
                          "stride": 0}
    spec["padding"] = {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of":
                       None, "pad_id": 0, "pad_type_id": 0, "pad_token": "<|endoftext|>"}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    return folder


def test_tokenizer_digest_ignores_padding_and_truncation(tiny, stateful_tok):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(stateful_tok)
    before, legacy_before = tokenizer_digest(tok), tokenizer_sha256(tok)
    tok("some text to encode", truncation=True, max_length=3, padding="max_length")
    tok.encode("more text")
    assert tokenizer_digest(tok) == before == tokenizer_digest(AutoTokenizer.from_pretrained(tiny))
    assert tokenizer_sha256(tok) != legacy_before  # the flaw the canonical digest removes


def test_tokenizer_saved_twice_has_one_digest_and_another_differs(tiny, tmp_path):
    from transformers import AutoTokenizer

    from harness.train import train_tokenizer

    AutoTokenizer.from_pretrained(tiny).save_pretrained(tmp_path / "a")
    AutoTokenizer.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    digests = {tokenizer_digest(AutoTokenizer.from_pretrained(p)) for p in
               (tiny, tmp_path / "a", tmp_path / "b")}
    assert len(digests) == 1
    other = train_tokenizer(["an unrelated corpus of words " * 40], vocab_size=300)
    assert tokenizer_digest(other) not in digests


# golden values from the implementation before identity schemes (commit f217cc4, base.py)
OLD_FP = dict(backend="hf", model="/models/tiny", revision=None, weights_sha256="ab" * 32,
              dtype="float32", tokenizer_sha256="cd" * 32, versions={"torch": "2.3.0"},
              settings={"device": "cpu"})
OLD_HUB_FP = dict(OLD_FP, weights_sha256=None, model="org/tiny", revision="main",
                  backend="openai")


@pytest.mark.parametrize(("d", "identity", "digest"), [
    (OLD_FP, "60d148159e22fd54de2116b1333903bbc2d871358c243917f4d35ac9da3f6acc",
     "e24e24b75cee72fa4f7a008459ff21a86fc0dd8b2423acd4c61f91a39bd2e357"),
    (OLD_HUB_FP, "338a6e642f739a8fe01f0a1d9496ba8413c25bff8ce42b9ad3ba9edc2955d83a",
     "f76ec5005ee11e99ffa5a4904a70701428636b86751fe593b07b1a5bdd3bce6d"),
])
def test_old_fingerprint_dict_keeps_its_identity_digest(d, identity, digest):
    fp = Fingerprint.from_dict(dict(d))
    assert fp.to_dict() == d and fp.identity_scheme is None and fp.model_identity() is None
    assert fp.identity_digest() == identity and fp.digest() == digest
    new = Fingerprint.from_dict({**d, "identity_scheme": "tensors-v1"})
    assert new.identity_digest() == ModelIdentity(d["weights_sha256"], "cd" * 32).digest()
    assert Fingerprint.from_dict(new.to_dict()) == new


def test_digest_cache_hit_and_invalidation(tiny, tmp_path, monkeypatch):
    f = tmp_path / "model.safetensors"
    shutil.copy(tiny / "model.safetensors", f)
    cold = weights_digest([f], tmp_path / "cache")
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 1
    real_scan = td._scan

    def no_scan(path):
        raise AssertionError("hashed again despite an unchanged file")

    monkeypatch.setattr(td, "_scan", no_scan)
    assert weights_digest([f], tmp_path / "cache") == cold
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(AssertionError, match="hashed again"):
        weights_digest([f], tmp_path / "cache")
    monkeypatch.setattr(td, "_scan", real_scan)
    assert weights_digest([f], tmp_path / "cache") == cold  # same tensors, new key


def _fake_hub_cache(tiny: Path, cache: Path, repo: str, commit: str) -> None:
    """The layout huggingface_hub reads offline: refs/<branch> -> snapshots/<commit>/files."""
    base = cache / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    shutil.copytree(tiny, snap)
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)


def test_hub_id_from_cache_branch_or_commit_and_fast_failure(tiny, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    _fake_hub_cache(tiny, tmp_path / "hub", "org/tiny", commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    local = identity_of_spec(f"hf:{tiny}")
    assert identity_of_spec("hf:org/tiny@main") == local  # hub unreachable: the cache answers
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert identity_of_spec(f"hf:org/tiny@{commit}") == identity_of_spec("hf:org/tiny") == local
    monkeypatch.chdir(tmp_path)  # "org/tiny" must not name a folder here
    assert HFBackend("org/tiny", device="cpu").fingerprint().model_identity() == local
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    with pytest.raises(BackendError, match="no network.*not in the local hub cache"):
        identity_of_spec("hf:org/absent@main")
    assert time.monotonic() - start < 5


def test_served_identity_is_the_weights_identity(tiny):
    from harness.serve.server import ScoringHandler

    class Anonymous(ScoringHandler):
        def _send(self, status: int, payload: dict) -> None:
            for card in payload.get("data", []):
                card.pop("tdp", None)
            super()._send(status, payload)

    with serving(tiny) as srv:
        assert identity_of_spec(f"openai:{srv.url}/tiny") == identity_of_spec(f"hf:{tiny}")
    with serving(tiny, handler=Anonymous) as srv:
        assert identity_of_spec(f"openai:{srv.url}/tiny") is None


def test_tokens_spec_records_canonical_digest_and_accepts_legacy(stateful_tok, caplog):
    from transformers import AutoTokenizer

    legacy_hash = tokenizer_sha256(AutoTokenizer.from_pretrained(stateful_tok))  # as recorded
    spec = tokens_spec(4, str(stateful_tok))
    tok = load_tokenizer(str(stateful_tok))
    assert spec.tokenizer_sha256 == tokenizer_digest(tok)
    tok("use it with state", truncation=True, max_length=2, padding="max_length")
    assert tokenizer_sha256(tok) != legacy_hash  # the old check would now refuse its own file
    assert spec_tokenizer_match(spec, tok) == "canonical"
    legacy = GeneratorSpec.from_dict({**spec.to_dict(), "tokenizer_sha256": legacy_hash})
    with caplog.at_level(logging.WARNING, logger="canaries.generators"):
        drawn = draw_canaries(legacy, HashDRBG(b"\x01" * 32, "t"), 3)
    assert len(drawn) == 3 and "legacy sha256" in caplog.text
    again = draw_canaries(spec, HashDRBG(b"\x01" * 32, "t"), 3)
    assert [c.units for c in again] == [c.units for c in drawn]
    wrong = GeneratorSpec.from_dict({**spec.to_dict(), "tokenizer_sha256": "0" * 64})
    with pytest.raises(GeneratorError, match="differs from the one the spec was made"):
        draw_canaries(wrong, HashDRBG(b"\x01" * 32, "t"), 1)


def test_malformed_identity_is_a_clear_error():
    with pytest.raises(BackendError, match="malformed model identity"):
        ModelIdentity.from_dict({"weights": 3, "tokenizer": None})
    with pytest.raises(BackendError, match="malformed model identity"):
        ModelIdentity.from_dict(["weights"])


def test_build_tiny_is_deterministic_per_seed(tmp_path):
    """Guards the fixtures: two builds with one seed are one model, another seed another."""
    a = identity_of_spec(f"hf:{build_tiny_lm(tmp_path / 'a', seed=3)}")
    b = identity_of_spec(f"hf:{build_tiny_lm(tmp_path / 'b', seed=3)}")
    c = identity_of_spec(f"hf:{build_tiny_lm(tmp_path / 'c', seed=4)}")
    assert a == b and a.weights != c.weights
