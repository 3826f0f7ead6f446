"""Which pool text trains which shadow model: seeded complementary random halves.

Models come in pairs. Pair p draws a uniformly random half H_p of the pool (a seeded
Fisher-Yates shuffle of the indices, first floor(P/2) taken); model 2p trains on H_p and model
2p+1 on the rest. So every model sees half the pool and, for any even number of models, every
text is IN for exactly half of them and OUT for the other half: the balanced design of the LiRA
reference code ("each example is seen exactly half of the time", tensorflow/privacy
research/mi_lira_2021/train.py `get_data`, commit 3d499e69ba8413d5e857ad27a9fbe7a8cf34a8b0),
reached here by pairing rather than by a column-wise argsort, so that model sizes are equal too
and any prefix of 2k models is itself balanced (the shadow-count sweeps use prefixes).
"""

from __future__ import annotations

import numpy as np

from canaries.drbg import HashDRBG

DESIGN = "complementary-halves-v1"


def pair_half(n_items: int, pair: int, seed: bytes) -> np.ndarray:
    """Boolean mask of the random half of `n_items` drawn for `pair` (floor(n/2) items)."""
    order = list(range(n_items))
    HashDRBG(seed, f"tdp-shadow-pair-{pair}").shuffle(order)
    mask = np.zeros(n_items, dtype=bool)
    mask[order[: n_items // 2]] = True
    return mask


def model_members(n_items: int, model: int, seed: bytes) -> np.ndarray:
    """Boolean mask of the pool texts model `model` trains on (its pair's half or the rest)."""
    half = pair_half(n_items, model // 2, seed)
    return half if model % 2 == 0 else ~half


def keep_matrix(n_items: int, n_models: int, seed: bytes) -> np.ndarray:
    """keep[i, j]: model i trains on pool text j; shape (n_models, n_items)."""
    if n_items < 2 or n_models < 1:
        raise ValueError(f"need >= 2 pool texts and >= 1 model, got {n_items} and {n_models}")
    rows = []
    for pair in range((n_models + 1) // 2):
        half = pair_half(n_items, pair, seed)
        rows.extend([half, ~half])
    return np.array(rows[:n_models])


def pack_mask(mask: np.ndarray) -> str:
    """A boolean mask as hex (numpy packbits, big bit order): how a manifest stores it."""
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes().hex()


def unpack_mask(text: str, n_items: int) -> np.ndarray:
    """Inverse of `pack_mask` for a mask of `n_items` entries."""
    raw = np.frombuffer(bytes.fromhex(text), dtype=np.uint8)
    if raw.size != (n_items + 7) // 8:
        raise ValueError(f"mask of {raw.size} bytes does not fit {n_items} items")
    return np.unpackbits(raw)[:n_items].astype(bool)
