"""Plain-language sentences shared by the HTML and Markdown reports."""

from __future__ import annotations

import math

from harness.results import AuditResult
from harness.stats import TestResult


def fmt_p(p: float, log10: float | None = None) -> str:
    """A probability for people; below the float range it is printed from its log10."""
    if log10 is not None and log10 == log10 and (p < 1e-300 or log10 < -300):
        return fmt_log10(log10)
    if p != p:  # NaN: evidence that carries no p-value
        return "none"
    if p == 0:
        return "0 (underflow: not a usable value)"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def fmt_log10(log10: float) -> str:
    """10**log10 as m.mme-N, for values far below the smallest float."""
    if log10 == float("-inf"):
        return "0 (underflow: not a usable value)"
    exp = math.floor(log10)
    mant = 10 ** (log10 - exp)
    if mant >= 9.995:  # rounding would print 10.00
        mant, exp = 1.0, exp + 1
    return f"{mant:.2f}e{exp}"


def fmt_result_p(r: TestResult) -> str:
    return fmt_p(r.pvalue, r.log10_pvalue)


def p_label(r: TestResult) -> str:
    """A p-value with what it is: an exact bound or an estimate."""
    if r.kind == "bound":
        return f"p ≤ {fmt_result_p(r)} (exact bound)"
    return f"p ≈ {fmt_result_p(r)} (estimate, not a bound)"


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
            f"probability at most {fmt_result_p(r)}."
        )
    return (
        f"H0 not rejected at α = {alpha:g} (p = {fmt_result_p(r)}): this audit gives no evidence "
        "that the model was trained on the canaries. Absence of evidence is not evidence of "
        "absence: the canaries may have been too few or repeated too rarely to be learned."
    )


SECONDARY_CAVEAT = (
    "Secondary tests are each valid on their own, but they were not pre-registered: picking "
    "the smallest of them after seeing the results would void its bound. Only the primary "
    "test carries the claim."
)


CACHED_SCORES = (
    "Per-item scores are stored in report.json so every statistic can be recomputed; stored or "
    "cached scores are not evidence by themselves: `tdp verify` re-scores every canary and a "
    "random sample of counterfactuals with the model (a forged score cache is caught only so)."
)

PLANTING = (
    "not recorded by the audit: planting and publication happen outside the harness (the "
    "inject/embed manifests say where). A claim needs a model trained after the canaries were "
    "published; if the model predates the beacon round, the owner could have audited many canary "
    "sets and shown the best one, so check the model's date against the beacon round."
)

STEP_TITLES = {
    "committed": "committed",
    "timestamped": "timestamp (RFC 3161)",
    "beacon": "public beacon round",
    "assigned": "canaries derived",
    "format": "protocol",
}


def timeline(a: AuditResult) -> list[tuple[str, str, str, str]]:
    """(step, time, verdict, evidence) of the protocol, in order, naming every missing step."""
    rows = [
        (STEP_TITLES.get(s["name"], s["name"]), s.get("time") or "", s["verdict"], s["detail"])
        for s in a.canary_set.protocol
    ]
    if not rows:  # a report from before protocol v2 recorded no chain
        rows.append(("protocol", "", "open", "no protocol record (report schema 1, canary format v1)"))
    rows.append(("planted", "", "open", PLANTING))
    rows.append(("audited", f"{a.started} – {a.finished}", "ok", f"{a.task} on {a.model.spec}"))
    rows.append(("verified", "", "open", "not part of the audit: run `tdp verify REPORT --canaries "
                 "FILE` with the revealed secret beside FILE"))
    return rows
