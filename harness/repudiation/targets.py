"""Find target texts in a PoL log's training data: which blocks a repudiation must leave out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.train.pol import PoLError, PoLLog, load_blocks


@dataclass(frozen=True)
class TargetBlocks:
    """Where one target occurs: its token count, its occurrences, and the blocks they touch."""

    text: str
    tokens: int
    occurrences: int
    blocks: frozenset[int]


def log_tokenizer(log: PoLLog) -> Any:
    """The tokenizer saved with the log."""
    from transformers import AutoTokenizer

    path = log.root / log.tokenizer
    if not path.is_dir():
        raise PoLError(f"{path}: the log's tokenizer folder is missing")
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def occurrences(stream: np.ndarray, needle: Sequence[int]) -> list[int]:
    """Start positions of `needle` in the token stream (every occurrence, overlaps included)."""
    m = len(needle)
    if m == 0 or m > len(stream):
        return []
    want = np.asarray(needle, dtype=stream.dtype)
    starts = np.flatnonzero(stream[: len(stream) - m + 1] == want[0])
    return [int(s) for s in starts if np.array_equal(stream[s : s + m], want)]


def locate(blocks: torch.Tensor, tokenizer: Any, text: str) -> TargetBlocks:
    """Every block holding any token of any occurrence of `text` (tokenized on its own, as
    documents are when packed; a canary inserted on a line of its own tokenizes the same)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    stream = blocks.reshape(-1).numpy()
    size = int(blocks.shape[1])
    starts = occurrences(stream, ids)
    touched = {b for s in starts for b in range(s // size, (s + len(ids) - 1) // size + 1)}
    return TargetBlocks(text, len(ids), len(starts), frozenset(touched))


def contains(blocks: torch.Tensor, tokenizer: Any, text: str) -> bool:
    """Whether any block sequence of the data holds the whole target (the stream, in order)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return bool(occurrences(blocks.reshape(-1).numpy(), ids))


def member_documents(log: PoLLog, tokenizer: Any) -> list[tuple[int, str]]:
    """(index, text) of every document wholly inside the log's blocks, decoded from its tokens
    (byte-level BPE decodes to the text it encoded)."""
    stream = load_blocks(log).reshape(-1)
    out = []
    for i, (start, end) in enumerate(log.data.documents):
        if end <= stream.numel():
            ids = stream[start:end].tolist()
            out.append((i, tokenizer.decode(ids, clean_up_tokenization_spaces=False)))
    return out
