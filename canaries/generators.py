"""Canary generators: fully specified distributions P that canaries and counterfactuals share.

`words`: L words drawn i.i.d. uniformly from a pinned word list, joined by one space.
`tokens`: L token ids drawn i.i.d. uniformly from a tokenizer's non-special vocabulary,
decoded to text; a draw whose text does not re-encode to the same ids is rejected, so P is
uniform over the round-trip-stable sequences (the spec states this rule).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal

from canaries.drbg import SAMPLER_NAME, HashDRBG
from canaries.tokenizer_identity import (
    Match,
    legacy_digests,
    tokenizer_digest,
    tokenizer_match,
    tokenizer_sha256,
)
from canaries.wordlist import WORDLISTS, load_wordlist

Kind = Literal["words", "tokens"]
ROUND_TRIP_RULE = "reject draws whose decode -> encode(add_special_tokens=False) differs"
MAX_REJECTIONS = 1000
log = logging.getLogger(__name__)


class GeneratorError(ValueError):
    """A generator spec is invalid or cannot be reproduced here."""


@dataclass(frozen=True)
class GeneratorSpec:
    """Everything needed to redraw from the same distribution P, and nothing secret."""

    kind: Kind
    length: int
    prefix_length: int = 0
    wordlist: str | None = None
    wordlist_sha256: str | None = None
    tokenizer: str | None = None
    tokenizer_sha256: str | None = None
    excluded_token_ids: tuple[int, ...] = ()
    alphabet_size: int = 0
    separator: str = " "
    rejection_rule: str | None = None
    sampler: str = SAMPLER_NAME
    distinct: bool = True  # all draws of one audit are distinct: sampling without replacement

    def __post_init__(self) -> None:
        if self.kind not in ("words", "tokens"):
            raise GeneratorError(f"kind must be 'words' or 'tokens', got {self.kind!r}")
        if self.length < 1:
            raise GeneratorError(f"length must be >= 1, got {self.length}")
        if not 0 <= self.prefix_length < self.length:
            raise GeneratorError(
                f"prefix_length must be in [0, length), got {self.prefix_length} for "
                f"length {self.length}"
            )
        if self.sampler != SAMPLER_NAME:
            raise GeneratorError(f"unknown sampler {self.sampler!r}; this version has {SAMPLER_NAME}")

    @property
    def secret_length(self) -> int:
        """Units after the public prefix (what extraction must recover)."""
        return self.length - self.prefix_length

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["excluded_token_ids"] = list(self.excluded_token_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorSpec:
        d = dict(d)
        d["excluded_token_ids"] = tuple(d.get("excluded_token_ids", ()))
        try:
            return cls(**d)
        except TypeError as e:
            raise GeneratorError(f"malformed generator spec: {e}") from e


@dataclass(frozen=True)
class Canary:
    """One draw: its units (words or token ids) and the text they make."""

    text: str
    units: tuple[str | int, ...]
    id: str = ""

    def prefix_units(self, spec: GeneratorSpec) -> tuple[str | int, ...]:
        return self.units[: spec.prefix_length]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "units": list(self.units)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Canary:
        return cls(text=d["text"], units=tuple(d["units"]), id=d.get("id", ""))


def words_spec(length: int, prefix_length: int = 0, wordlist: str = "eff-large-v1") -> GeneratorSpec:
    """Spec for L words uniform over a pinned word list."""
    words = load_wordlist(wordlist)
    return GeneratorSpec(
        kind="words",
        length=length,
        prefix_length=prefix_length,
        wordlist=wordlist,
        wordlist_sha256=WORDLISTS[wordlist],
        alphabet_size=len(words),
    )


@lru_cache(maxsize=8)
def load_tokenizer(name: str) -> Any:
    """Load a tokenizer by local path or hub id (hub needs a network)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as e:  # transformers raises OSError/ValueError/HF errors
        raise GeneratorError(f"cannot load tokenizer {name!r}: {e}") from e


def tokens_spec(length: int, tokenizer: str, prefix_length: int = 0) -> GeneratorSpec:
    """Spec for L token ids uniform over a tokenizer's non-special vocabulary."""
    tok = load_tokenizer(tokenizer)
    vocab_size = len(tok)
    excluded = tuple(sorted(set(tok.all_special_ids)))
    return GeneratorSpec(
        kind="tokens",
        length=length,
        prefix_length=prefix_length,
        tokenizer=tokenizer,
        tokenizer_sha256=tokenizer_digest(tok),  # the canonical digest, despite the field's name
        excluded_token_ids=excluded,
        alphabet_size=vocab_size - len(excluded),
        rejection_rule=ROUND_TRIP_RULE,
    )


def spec_tokenizer_match(spec: GeneratorSpec, tokenizer: Any) -> Match:
    """How `tokenizer` matches the digest a tokens spec recorded: "canonical" (new specs) or
    "legacy" (specs recorded with the raw serialisation's sha256, logged); else an error."""
    match = tokenizer_match(tokenizer, spec.tokenizer_sha256)
    if match is None and spec.tokenizer is not None:
        # a legacy digest taken before any call rewrote padding/truncation: load it afresh
        fresh = legacy_digests(_fresh(spec.tokenizer))
        match = "legacy" if spec.tokenizer_sha256 in fresh else None
    if match is None:
        raise GeneratorError(
            f"tokenizer {spec.tokenizer!r} differs from the one the spec was made "
            "with (sha256 mismatch): counterfactuals would come from another distribution"
        )
    if match == "legacy":
        log.warning(
            "tokenizer %r matched the spec's legacy sha256 (raw serialisation); new canary "
            "sets record the canonical digest", spec.tokenizer
        )
    return match


def _fresh(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as e:  # transformers raises OSError/ValueError/HF errors
        raise GeneratorError(f"cannot load tokenizer {name!r}: {e}") from e


class _Sampler:
    """Draws single canaries from a spec; checks the spec's pinned alphabet first."""

    def __init__(self, spec: GeneratorSpec) -> None:
        self.spec = spec
        if spec.kind == "words":
            if spec.wordlist is None or spec.wordlist not in WORDLISTS:
                raise GeneratorError(f"unknown word list {spec.wordlist!r}")
            if spec.wordlist_sha256 != WORDLISTS[spec.wordlist]:
                raise GeneratorError("word list hash in the spec does not match the shipped list")
            self.words = load_wordlist(spec.wordlist)
            if spec.alphabet_size != len(self.words):
                raise GeneratorError("alphabet_size does not match the word list")
        else:
            if spec.tokenizer is None:
                raise GeneratorError("a tokens spec needs a tokenizer")
            self.tok = load_tokenizer(spec.tokenizer)
            self.tokenizer_match = spec_tokenizer_match(spec, self.tok)
            excluded = set(spec.excluded_token_ids)
            self.alphabet = [i for i in range(len(self.tok)) if i not in excluded]
            if len(self.alphabet) != spec.alphabet_size:
                raise GeneratorError("alphabet_size does not match the tokenizer vocabulary")

    def draw(self, rng: HashDRBG) -> Canary:
        spec = self.spec
        if spec.kind == "words":
            units = tuple(self.words[i] for i in rng.randbelow_many(len(self.words), spec.length))
            return Canary(text=spec.separator.join(units), units=units)
        for _ in range(MAX_REJECTIONS):
            ids = [self.alphabet[i] for i in rng.randbelow_many(len(self.alphabet), spec.length)]
            text = self.tok.decode(ids)
            if list(self.tok.encode(text, add_special_tokens=False)) == ids:
                return Canary(text=text, units=tuple(ids))
        raise GeneratorError(
            f"{MAX_REJECTIONS} consecutive token draws failed the round-trip check: "
            "this tokenizer cannot carry token canaries of this length"
        )


def draw_canaries(
    spec: GeneratorSpec,
    rng: HashDRBG,
    count: int,
    exclude: Iterable[str] = (),
    id_prefix: str = "c",
    progress: bool = False,
) -> list[Canary]:
    """Draw `count` distinct canaries from P, skipping any whose text is in `exclude`.

    Distinctness (sampling without replacement over the generator's support) keeps the
    joint law of canaries and counterfactuals exchangeable.
    """
    sampler = _Sampler(spec)
    seen = set(exclude)
    out: list[Canary] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, desc="drawing", unit="draw", leave=False)
    while len(out) < count:
        c = sampler.draw(rng)
        if c.text in seen:
            continue
        seen.add(c.text)
        out.append(Canary(text=c.text, units=c.units, id=f"{id_prefix}{len(out):06d}"))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def conforms(spec: GeneratorSpec, canary: Canary) -> str | None:
    """Why `canary` could not have come from `spec`, or None if it could."""
    if len(canary.units) != spec.length:
        return f"canary {canary.id} has {len(canary.units)} units, spec says {spec.length}"
    if spec.kind == "words":
        words = set(load_wordlist(spec.wordlist or ""))
        bad = [u for u in canary.units if u not in words]
        if bad:
            return f"canary {canary.id} has words not in {spec.wordlist}: {bad[:3]}"
        if canary.text != spec.separator.join(map(str, canary.units)):
            return f"canary {canary.id}: text does not equal its joined words"
    elif any(not isinstance(u, int) or u in spec.excluded_token_ids for u in canary.units):
        return f"canary {canary.id} has non-integer or excluded token ids"
    return None


__all__ = [
    "Canary",
    "GeneratorError",
    "GeneratorSpec",
    "conforms",
    "draw_canaries",
    "load_tokenizer",
    "spec_tokenizer_match",
    "tokenizer_digest",
    "tokenizer_sha256",
    "tokens_spec",
    "words_spec",
]
