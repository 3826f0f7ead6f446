"""The versioned word lists shipped with the package, pinned by sha256."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

#: name -> sha256 of the file's bytes; a canary spec commits to both.
WORDLISTS: dict[str, str] = {
    "eff-large-v1": "6d557f0693958fb5e650b68b5bee585eb82cf4da32965505c789e924743bc522",
}


class WordlistError(ValueError):
    """A word list is unknown or its bytes differ from the pinned hash."""


@lru_cache(maxsize=None)
def load_wordlist(name: str) -> tuple[str, ...]:
    """Return the words of a shipped list, after checking its pinned sha256."""
    if name not in WORDLISTS:
        raise WordlistError(f"unknown word list {name!r}; known: {sorted(WORDLISTS)}")
    data = resources.files("canaries").joinpath(f"wordlists/{name}.txt").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != WORDLISTS[name]:
        raise WordlistError(
            f"word list {name!r} has sha256 {digest}, expected {WORDLISTS[name]}: "
            "the installed file was modified"
        )
    words = tuple(data.decode("utf-8").split())
    if len(set(words)) != len(words):
        raise WordlistError(f"word list {name!r} has duplicate words")
    return words
