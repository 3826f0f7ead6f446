"""Verbatim-overlap metrics between a model's continuation and the true text (evidence only).

For natural text there is no null distribution: a continuation can match because the text is
predictable (boilerplate, quotations, common phrasing) or because it appears elsewhere on the
web, so these numbers are reported as evidence and never as a false-positive bound.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Overlap:
    """How much of the true continuation a generated continuation reproduces."""

    exact_prefix_words: int  # leading words equal, in order, before the first difference
    exact: bool  # the whole true continuation reproduced word for word
    lcs_chars: int  # longest common substring, in characters (whitespace normalised)
    lcs: str
    bleu: float  # sentence BLEU-4 on words, smoothing method 1 (Chen & Cherry 2014)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def exact_prefix_length(generated: Sequence[str], truth: Sequence[str]) -> int:
    """Number of leading units of `truth` that `generated` reproduces before its first miss."""
    n = 0
    for g, t in zip(generated, truth, strict=False):
        if g != t:
            break
        n += 1
    return n


def longest_common_substring(a: str, b: str) -> str:
    """The longest string occurring in both `a` and `b` (first one found on ties)."""
    m = difflib.SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return a[m.a : m.a + m.size]


def bleu(generated: Sequence[str], truth: Sequence[str]) -> float:
    """Sentence BLEU-4 of `generated` words against the single reference `truth` (nltk)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if not generated or not truth:
        return 0.0
    return float(
        sentence_bleu(
            [list(truth)], list(generated), smoothing_function=SmoothingFunction().method1
        )
    )


def overlap(generated_text: str, truth_text: str) -> Overlap:
    """All overlap metrics of a generated continuation against the true continuation (words)."""
    g, t = generated_text.split(), truth_text.split()
    g = g[: len(t)]  # judge only as many words as the truth has
    a, b = " ".join(g), " ".join(t)
    lcs = longest_common_substring(a, b)
    prefix = exact_prefix_length(g, t)
    return Overlap(
        exact_prefix_words=prefix,
        exact=bool(t) and prefix == len(t),
        lcs_chars=len(lcs),
        lcs=lcs,
        bleu=bleu(g, t),
    )


__all__ = ["Overlap", "bleu", "exact_prefix_length", "longest_common_substring", "overlap"]
