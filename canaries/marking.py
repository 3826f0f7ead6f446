"""Mark a user's documents: one committed canary per document, at a random line boundary."""

from __future__ import annotations

from collections.abc import Sequence

from canaries.canary_set import CanarySet
from canaries.drbg import HashDRBG


def mark_documents(texts: Sequence[str], cs: CanarySet, seed: bytes) -> list[str]:
    """Return the K documents with canary i inserted into document i (seeded position).

    MembershipTracker marks every sample of the user; here the mark is a random canary
    sentence, so one document carries one draw and the user's K marks are i.i.d.
    """
    if len(texts) != len(cs.canaries):
        raise ValueError(
            f"need exactly one document per canary: {len(texts)} documents, {len(cs.canaries)} canaries"
        )
    rng = HashDRBG(seed, "mark-documents")
    out = []
    for text, canary in zip(texts, cs.canaries, strict=True):
        starts = (
            [0]
            + [i + 1 for i, ch in enumerate(text) if ch == "\n" and i + 1 < len(text)]
            + [len(text)]
        )
        at = starts[rng.randbelow(len(starts))]
        before, after = text[:at], text[at:]
        sep = "" if at == 0 or before.endswith("\n") else "\n"
        out.append(before + sep + canary.text + ("\n" if after else "") + after)
    return out
