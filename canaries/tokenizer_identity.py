"""A tokenizer's identity: a digest of what maps text to ids and back, never of its state.

The canonical digest covers the vocabulary, merges, normaliser, pre-tokenizer, post-processor,
decoder, added tokens (with their flags) and the special-token roles (bos, eos, unk, pad, ...).
It leaves out padding and truncation settings: transformers rewrites those on the Rust tokenizer
at every call (`set_truncation_and_padding`), so a digest of the raw serialisation changes after
the first `encode` when tokenizer.json carries either field. The legacy digest
(`tokenizer_sha256`, the raw serialisation) is kept to check files recorded with it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

Match = Literal["canonical", "legacy"]
_STATE_KEYS = ("padding", "truncation", "version")


def _sha256_json(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def tokenizer_content(tokenizer: Any) -> dict[str, Any]:
    """The canonical content of a transformers tokenizer, as JSON-able data."""
    roles = _roles(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for key in _STATE_KEYS:
            spec.pop(key, None)
        _pair_merges(spec.get("model"))
        return {"kind": "tokenizers", "tokenizer": spec, "roles": roles}
    # python/sentencepiece tokenizers: vocabulary, added tokens, the sentencepiece model if any
    content: dict[str, Any] = {
        "kind": "vocab",
        "class": type(tokenizer).__name__,
        "vocab": sorted(([str(t), int(i)] for t, i in tokenizer.get_vocab().items()),
                        key=lambda ti: (ti[1], ti[0])),
        "roles": roles,
    }
    sp = getattr(tokenizer, "sp_model", None)
    if sp is not None and hasattr(sp, "serialized_model_proto"):
        content["sentencepiece_sha256"] = hashlib.sha256(sp.serialized_model_proto()).hexdigest()
    return content


def tokenizer_digest(tokenizer: Any) -> str:
    """sha256 of the canonical content: equal for one tokenizer however saved or used."""
    return _sha256_json(tokenizer_content(tokenizer))


def _roles(tokenizer: Any) -> dict[str, Any]:
    """Special-token roles (`bos_token` -> text); lists (additional tokens) kept in order."""
    out: dict[str, Any] = {}
    for role, tok in dict(getattr(tokenizer, "special_tokens_map", {}) or {}).items():
        out[str(role)] = [str(t) for t in tok] if isinstance(tok, (list, tuple)) else str(tok)
    return out


def _pair_merges(model: Any) -> None:
    """BPE merges as [left, right] pairs: tokenizers >= 0.20 writes pairs, older "left right"
    strings (which cannot hold a space inside a token, so splitting at the space is exact)."""
    if not isinstance(model, dict) or not isinstance(model.get("merges"), list):
        return
    model["merges"] = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in model["merges"]]


def tokenizer_sha256(tokenizer: Any) -> str:
    """Legacy digest: sha256 of the raw serialisation, state included (see the module doc)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        blob = backend.to_str()
    else:  # slow tokenizers: vocabulary plus special tokens is what defines the mapping
        blob = repr(sorted(tokenizer.get_vocab().items())) + repr(tokenizer.all_special_tokens)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def legacy_digests(tokenizer: Any) -> set[str]:
    """The legacy digest as it is now and as it was before any call set padding/truncation."""
    out = {tokenizer_sha256(tokenizer)}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers import Tokenizer

        clean = Tokenizer.from_str(backend.to_str())  # a copy: the caller's state is untouched
        clean.no_padding()
        clean.no_truncation()
        out.add(hashlib.sha256(clean.to_str().encode("utf-8")).hexdigest())
    return out


def tokenizer_match(tokenizer: Any, recorded: str | None) -> Match | None:
    """Which digest of `tokenizer` equals `recorded`: "canonical", "legacy", or None."""
    if recorded is None:
        return None
    if tokenizer_digest(tokenizer) == recorded:
        return "canonical"
    return "legacy" if recorded in legacy_digests(tokenizer) else None
