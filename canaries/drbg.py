"""A fully specified deterministic random bit generator (SHA-256 in counter mode).

Canaries and counterfactuals must be regenerable by anyone, on any machine and
any numpy version, from a recorded seed. numpy's `Generator` methods carry no
cross-version stream guarantee, so draws use this small, documented sampler:
block i = sha256(b"tdp-drbg-v1" || len(purpose) || purpose || seed || i), read
as eight big-endian uint32 words; uniform integers in [0, n) by rejection
(words >= 2^32 - 2^32 mod n are discarded), so every value has probability 1/n.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableSequence
from typing import TypeVar

SAMPLER_NAME = "sha256-ctr-rejection-v1"
_TWO32 = 1 << 32
T = TypeVar("T")


class HashDRBG:
    """Deterministic uniform integers from a secret or recorded seed."""

    def __init__(self, seed: bytes, purpose: str) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) < 16:
            raise ValueError("seed must be at least 16 bytes")
        p = purpose.encode("utf-8")
        self._prefix = b"tdp-drbg-v1" + len(p).to_bytes(4, "big") + p + bytes(seed)
        self._counter = 0
        self._words: list[int] = []

    def _next_word(self) -> int:
        if not self._words:
            block = hashlib.sha256(self._prefix + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            self._words = [int.from_bytes(block[i : i + 4], "big") for i in range(28, -1, -4)]
        return self._words.pop()

    def randbelow(self, n: int) -> int:
        """One integer uniform on [0, n), for 1 <= n <= 2^32."""
        if not 1 <= n <= _TWO32:
            raise ValueError(f"n must be in [1, 2^32], got {n}")
        limit = _TWO32 - (_TWO32 % n)
        while True:
            w = self._next_word()
            if w < limit:
                return w % n

    def randbelow_many(self, n: int, count: int) -> list[int]:
        """`count` independent integers uniform on [0, n)."""
        return [self.randbelow(n) for _ in range(count)]

    def shuffle(self, items: MutableSequence[T]) -> None:
        """Fisher-Yates shuffle in place (uniform over permutations)."""
        for i in range(len(items) - 1, 0, -1):
            j = self.randbelow(i + 1)
            items[i], items[j] = items[j], items[i]


def derive_seed(label: str, *parts: str | bytes) -> bytes:
    """sha256 over a label and length-prefixed parts: a seed anyone can recompute."""
    h = hashlib.sha256(label.encode("utf-8"))
    for part in parts:
        b = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.digest()
