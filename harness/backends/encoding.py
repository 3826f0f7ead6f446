"""Token-id prompts for scoring, shared by backends that send ids rather than text.

Every backend must score exactly the same token sequence for a text, so the rule lives here:
the text is encoded without special tokens and the scoring prefix (BOS, else EOS) is put in
front, so that the first real token is scored too. Engines are never asked to re-tokenize.
"""

from __future__ import annotations

from typing import Any

from harness.backends.base import BackendError


def scoring_prefix_id(tokenizer: Any) -> int | None:
    """BOS id, else EOS id, else None (then the first token of a text is not scored)."""
    if tokenizer.bos_token_id is not None:
        return int(tokenizer.bos_token_id)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    return None


def scoring_ids(tokenizer: Any, text: str, prefix_id: int | None, max_length: int) -> list[int]:
    """Token ids of `text` with the scoring prefix in front; errors name the offending text."""
    ids = [int(i) for i in tokenizer.encode(text, add_special_tokens=False)]
    unk = tokenizer.unk_token_id
    if unk is not None and unk in ids:
        raise BackendError(
            "the tokenizer maps part of the text to its unknown token, so that text cannot be "
            f"scored faithfully: {text[:60]!r}"
        )
    if not ids:
        raise BackendError(f"text encodes to no tokens: {text[:60]!r}")
    if prefix_id is not None:
        ids = [prefix_id, *ids]
    if len(ids) > max_length:
        raise BackendError(f"text of {len(ids)} tokens exceeds the model's context of {max_length}")
    return ids


def load_tokenizer(name: str, revision: str | None = None) -> Any:
    """A transformers tokenizer by local path or hub id, with a clear error when it fails."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, revision=revision)
    except Exception as e:  # hub/network/format errors come in many types
        raise BackendError(f"cannot load tokenizer {name!r} (revision {revision}): {e}") from e
