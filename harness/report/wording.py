"""Plain-language sentences shared by the HTML and Markdown reports."""

from __future__ import annotations

from harness.results import AuditResult
from harness.stats import TestResult


def fmt_p(p: float) -> str:
    if p != p:  # NaN: evidence that carries no p-value
        return "none"
    if p == 0:
        return "0"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def p_label(r: TestResult) -> str:
    """A p-value with what it is: an exact bound or an estimate."""
    word = "exact bound" if r.kind == "bound" else "estimate (not a bound)"
    return f"p ≤ {fmt_p(r.pvalue)} ({word})" if r.kind == "bound" else f"p ≈ {fmt_p(r.pvalue)} ({word})"


def null_hypothesis(a: AuditResult) -> str:
    spec = a.canary_set.spec
    if a.task == "extraction":
        secret = spec["length"] - spec["prefix_length"]
        return (
            f"H0: the model is independent of the secret suffixes of these {a.canary_set.count} "
            f"canaries (a public prefix of {spec['prefix_length']} {spec['kind']} followed by "
            f"{secret} secret {spec['kind']} drawn uniformly from an alphabet of "
            f"{spec['alphabet_size']}). Under H0 a continuation of the public prefix reproduces "
            f"each secret unit with probability at most 1/{spec['alphabet_size']}, independently, "
            "so the number of reproduced units is at most binomial."
        )
    what = (
        f"{spec['length']} words drawn uniformly from the {spec.get('wordlist')} list"
        if spec["kind"] == "words"
        else f"{spec['length']} token ids drawn uniformly from the vocabulary of {spec.get('tokenizer')}"
    )
    r = a.primary.result
    if r.name == "set-mean":
        return (
            f"H0: the model was not trained on this user's {r.k} marks. Each mark is {what}, with "
            f"secret randomness; the {r.m} out-world users' marks were drawn the same way at audit "
            "time and never published, so under H0 the user's set and theirs are exchangeable and "
            "the user's set mean is equally likely to take any rank among the users' set means."
        )
    return (
        f"H0: the model was not trained on these {a.canary_set.count} canaries. Each canary is "
        f"{what}, with secret randomness; under H0 the model is independent of them, so the "
        f"canaries and {a.primary.result.m} fresh counterfactuals drawn from the same generator "
        "are exchangeable and every ordering of their scores is equally likely."
    )


def verdict(a: AuditResult) -> str:
    r = a.primary.result
    alpha = a.alpha
    if r.kind != "bound":
        return "No bound: the primary statistic is an estimate."
    if r.pvalue <= alpha:
        return (
            f"H0 rejected at the pre-registered level α = {alpha:g}: if the model had not been "
            f"trained on the canaries, a result at least this extreme would occur with "
            f"probability at most {fmt_p(r.pvalue)}."
        )
    return (
        f"H0 not rejected at α = {alpha:g} (p = {fmt_p(r.pvalue)}): this audit gives no evidence "
        "that the model was trained on the canaries. Absence of evidence is not evidence of "
        "absence: the canaries may have been too few or repeated too rarely to be learned."
    )


SECONDARY_CAVEAT = (
    "Secondary tests are each valid on their own, but they were not pre-registered: picking "
    "the smallest of them after seeing the results would void its bound. Only the primary "
    "test carries the claim."
)
