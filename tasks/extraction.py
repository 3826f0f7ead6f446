"""`extraction`: prompt with each canary's public prefix and count the secret units reproduced.

Canary extraction: greedy and n sampled continuations of the public prefix, position-wise
matches against the secret suffix, exact binomial bounds per canary and over the set
(primary: greedy matches over the set). Document extraction (optional, `documents=PATH`):
prefix -> continuation on natural text the user owns, with exact-match length, longest common
substring and BLEU, reported as evidence without a bound (natural text has no null law).
Works through any backend's `generate`; token canaries use `generate_ids` when the backend has
it and shares the canaries' tokenizer, so the prompt ids are cut from the secret's own
tokenization (no BPE merge across the prefix/suffix boundary).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from canaries.canary_set import CanarySetError, canonical_json
from canaries.corpus import CorpusError
from canaries.drbg import derive_seed
from canaries.generators import GeneratorSpec, load_tokenizer
from harness.audit import AuditContext
from harness.backends.base import Backend
from harness.provenance import now
from harness.registry import Task
from harness.results import AuditResult, ItemScores, NamedTest
from harness.stats import TestResult
from harness.stats.extraction import count_matches, extraction_test
from harness.stats.overlap import overlap

log = logging.getLogger(__name__)

SAMPLING_SEED_LABEL = "tdp-extraction-sampling-v1"
SAMPLING_SEED_DERIVATION = (
    "sha256('tdp-extraction-sampling-v1' | model identity digest | canonical JSON of the public "
    "prefixes): a function of public data only, so the sampling randomness cannot depend on the "
    "secret suffixes"
)
TOKENS_NOT_IID = (
    "token canaries are drawn uniformly over the token sequences that survive the decode/encode "
    "round trip, not i.i.d. per position, so a position's match probability is not exactly "
    "1/|A|; the value is the binomial tail computed as if the units were i.i.d."
)
DOCUMENT_EVIDENCE_REASON = (
    "evidence, not a bound: natural text has no known null distribution (a continuation can "
    "match because the text is predictable, boilerplate, quoted or copied elsewhere), so no "
    "false-positive probability can be attached to these overlaps"
)


@dataclass(frozen=True)
class ExtractionConfig:
    """Options of the extraction task (`--option key=value`)."""

    samples: int = 8  # sampled continuations per canary besides the greedy one (0 = greedy only)
    temperature: float = 1.0
    tokens_per_word: int = 6  # generation budget per secret word for word canaries
    documents: str | None = None  # JSONL ("text" field) or a directory of .txt: evidence only
    doc_prefix_words: int = 32
    doc_continuation_words: int = 32
    max_documents: int = 200

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ValueError(f"samples must be >= 0, got {self.samples}")
        if self.samples > 0 and not self.temperature > 0:
            raise ValueError(f"sampling needs temperature > 0, got {self.temperature}")
        for name in (
            "tokens_per_word",
            "doc_prefix_words",
            "doc_continuation_words",
            "max_documents",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class CanaryExtraction:
    """What the model produced from one canary's public prefix, next to the truth."""

    id: str
    prefix: str
    truth: str
    truth_units: list[Any]
    greedy: str
    greedy_units: list[Any]
    greedy_matches: int
    samples: list[str]
    samples_units: list[list[Any]]
    best_matches: int


# --- units ------------------------------------------------------------------------------------
def words_after_prefix(
    prompt: str, continuation: str, prefix_length: int, length: int
) -> list[str]:
    """The `length` words that follow the prefix in prompt + continuation (split on whitespace).

    Splitting the joined text keeps positions right when the model first finishes the
    prefix's last word (no leading space): that fragment stays with the prefix word.
    """
    return (prompt + continuation).split()[prefix_length : prefix_length + length]


def sampling_seed(backend: Backend, prefixes: Sequence[str]) -> int:
    """Seed for sampled continuations from public data only (model identity, prefixes)."""
    blob = canonical_json(list(prefixes))
    seed = derive_seed(SAMPLING_SEED_LABEL, backend.fingerprint().identity_digest(), blob)
    return int.from_bytes(seed[:8], "big") >> 1


def _shares_tokenizer(backend: Backend, spec: GeneratorSpec) -> bool:
    """Whether token ids can go straight in: `generate_ids` and the canaries' own tokenizer."""
    return callable(getattr(backend, "generate_ids", None)) and (
        backend.fingerprint().tokenizer_sha256 == spec.tokenizer_sha256
    )


def _generate_units(
    ctx: AuditContext,
    config: ExtractionConfig,
    prompts: list[str],
    n: int,
    temperature: float,
    seed: int,
) -> tuple[list[list[str]], list[list[list[Any]]], str]:
    """n continuations per canary as (texts, units, how the units were obtained)."""
    cs, spec, backend = ctx.canary_set, ctx.canary_set.spec, ctx.backend
    p, length = spec.prefix_length, spec.secret_length
    if spec.kind == "words":
        texts = backend.generate(prompts, length * config.tokens_per_word, n, temperature, seed)
        units = [
            [words_after_prefix(pr, t, p, length) for t in row]
            for pr, row in zip(prompts, texts, strict=True)
        ]
        return (
            texts,
            units,
            "words: prompt + continuation split on whitespace, words after the prefix",
        )
    if _shares_tokenizer(backend, spec):
        ids = backend.generate_ids(
            [list(c.units[:p]) for c in cs.canaries], length, n, temperature, seed
        )
        tok = backend.tokenizer
        texts = [[tok.decode(r) for r in row] for row in ids]
        return (
            texts,
            [[r[:length] for r in row] for row in ids],
            ("token ids: prompt ids cut from the canary's own ids, continuation compared as ids"),
        )
    # text path: any backend; the ids are recovered by encoding the continuation text
    tok = load_tokenizer(spec.tokenizer or "")
    texts = backend.generate(prompts, length, n, temperature, seed)
    units = [[list(tok.encode(t, add_special_tokens=False))[:length] for t in row] for row in texts]
    return (
        texts,
        units,
        (
            "token ids recovered by re-encoding the continuation text (backend without "
            "generate_ids or another tokenizer): BPE merges at the prefix boundary can shift ids "
            "and lose matches"
        ),
    )


def extract_canaries(
    ctx: AuditContext, config: ExtractionConfig
) -> tuple[list[CanaryExtraction], dict[str, Any]]:
    """Greedy and sampled continuations of each canary's public prefix, matched to its suffix."""
    cs, spec = ctx.canary_set, ctx.canary_set.spec
    p = spec.prefix_length
    decoder = _token_decoder(spec, ctx) if spec.kind == "tokens" else None
    prompts = [_unit_text(c.units[:p], spec, decoder) for c in cs.canaries]
    greedy_texts, greedy_units, how = _generate_units(ctx, config, prompts, 1, 0.0, 0)
    seed = sampling_seed(ctx.backend, prompts)
    if config.samples:
        s_texts, s_units, _ = _generate_units(
            ctx, config, prompts, config.samples, config.temperature, seed
        )
    else:
        s_texts, s_units = [[] for _ in prompts], [[] for _ in prompts]
    out = []
    for j, c in enumerate(cs.canaries):
        truth = list(c.units[p:])
        g = greedy_units[j][0]
        gm = count_matches(g, truth)
        best = max([gm] + [count_matches(u, truth) for u in s_units[j]])
        out.append(
            CanaryExtraction(
                id=c.id,
                prefix=prompts[j],
                truth=_unit_text(c.units[p:], spec, decoder),
                truth_units=truth,
                greedy=greedy_texts[j][0],
                greedy_units=list(g),
                greedy_matches=gm,
                samples=list(s_texts[j]),
                samples_units=[list(u) for u in s_units[j]],
                best_matches=best,
            )
        )
    info = {
        "units": how,
        "sampling_seed": seed,
        "sampling_seed_derivation": SAMPLING_SEED_DERIVATION,
    }
    return out, info


def _unit_text(units: Sequence[Any], spec: GeneratorSpec, decoder: Any) -> str:
    if spec.kind == "words":
        return spec.separator.join(map(str, units))
    return decoder.decode(list(units))


def _token_decoder(spec: GeneratorSpec, ctx: AuditContext) -> Any:
    if ctx.backend.fingerprint().tokenizer_sha256 == spec.tokenizer_sha256:
        return ctx.backend.tokenizer
    return load_tokenizer(spec.tokenizer or "")


# --- documents (evidence) ---------------------------------------------------------------------
def document_prompts(
    text: str, prefix_words: int, continuation_words: int
) -> tuple[str, str] | None:
    """(prompt, truth): the text up to the end of word `prefix_words`, and the next words.

    The prompt keeps the document's own characters; None if the document is too short.
    """
    words = text.split()
    if len(words) < prefix_words + continuation_words:
        return None
    pos = 0
    for w in words[:prefix_words]:
        pos = text.index(w, pos) + len(w)
    return text[:pos], " ".join(words[prefix_words : prefix_words + continuation_words])


def extract_documents(
    backend: Backend, texts: Sequence[str], config: ExtractionConfig
) -> list[dict[str, Any]]:
    """Greedy continuation of each document's opening, with verbatim-overlap metrics."""
    pairs = [
        (i, pair)
        for i, t in enumerate(texts)
        if (pair := document_prompts(t, config.doc_prefix_words, config.doc_continuation_words))
    ][: config.max_documents]
    if not pairs:
        raise CorpusError(
            f"no document has the {config.doc_prefix_words} + {config.doc_continuation_words} "
            "words that document extraction needs (lower doc_prefix_words / doc_continuation_words)"
        )
    budget = config.doc_continuation_words * config.tokens_per_word
    gens = backend.generate([pr for _, (pr, _) in pairs], budget, 1, 0.0, 0)
    rows = []
    for (i, (prompt, truth)), row in zip(pairs, gens, strict=True):
        generated = " ".join(row[0].split()[: config.doc_continuation_words])
        rows.append(
            {
                "document": i,
                "prefix": prompt,
                "truth": truth,
                "extracted": generated,
                **overlap(generated, truth).to_dict(),
            }
        )
    return rows


def document_evidence(rows: list[dict[str, Any]], source: str) -> TestResult:
    """Summary of document extraction as a result labelled estimate, with no p-value."""
    n = len(rows)
    mean_bleu = sum(r["bleu"] for r in rows) / n
    return TestResult(
        name="document-overlap",
        statistic=mean_bleu,
        pvalue=float("nan"),
        kind="estimate",
        method="mean sentence BLEU-4 (nltk, smoothing method 1) of greedy continuations; "
        + DOCUMENT_EVIDENCE_REASON,
        k=n,
        m=0,
        min_attainable_p=float("nan"),
        alternative="continuations reproduce the documents verbatim",
        assumptions=(DOCUMENT_EVIDENCE_REASON,),
        details={
            "source": source,
            "documents": rows,
            "mean_bleu": mean_bleu,
            "exact_continuations": sum(1 for r in rows if r["exact"]),
            "mean_exact_prefix_words": sum(r["exact_prefix_words"] for r in rows) / n,
            "max_lcs_chars": max(r["lcs_chars"] for r in rows),
        },
    )


# --- the task ---------------------------------------------------------------------------------
def _check_canary_set(ctx: AuditContext) -> None:
    spec = ctx.canary_set.spec
    if spec.prefix_length == 0:
        raise CanarySetError(
            f"{ctx.canary_path}: extraction needs canaries with a public prefix, but this set has "
            "prefix_length 0 (draw one with `tdp canaries new --prefix-length N`)"
        )
    if spec.kind == "words" and not (spec.separator.isspace() and len(spec.separator) == 1):
        raise CanarySetError(
            f"{ctx.canary_path}: word canaries joined by {spec.separator!r} cannot be matched "
            "word by word after splitting on whitespace"
        )
    if spec.alphabet_size < 2:
        raise CanarySetError(f"{ctx.canary_path}: alphabet size {spec.alphabet_size} is too small")


def run(ctx: AuditContext, config: ExtractionConfig) -> AuditResult:
    started = now()
    _check_canary_set(ctx)
    cs, spec = ctx.canary_set, ctx.canary_set.spec
    extractions, info = extract_canaries(ctx, config)
    iid = not (spec.kind == "tokens" and spec.rejection_rule)
    common = dict(
        length=spec.secret_length,
        alphabet_size=spec.alphabet_size,
        canary_length=spec.length,
        iid_units=iid,
        non_iid_reason=TOKENS_NOT_IID,
    )
    greedy = extraction_test(
        [e.greedy_matches for e in extractions], name="extraction-greedy", **common
    )
    greedy = replace(
        greedy, details={**greedy.details, **info, "extractions": [asdict(e) for e in extractions]}
    )
    tests = [NamedTest(score="greedy-matches", primary=True, result=greedy)]
    if config.samples:
        best = extraction_test(
            [e.best_matches for e in extractions],
            attempts=config.samples + 1,
            name="extraction-best-of-n",
            **common,
        )
        tests.append(NamedTest(score="best-of-n-matches", primary=False, result=best))
    notes = [
        "Primary test: total secret units reproduced by the greedy continuations over the set; "
        f"each canary has a public prefix of {spec.prefix_length} and a secret suffix of "
        f"{spec.secret_length} {spec.kind}. Per-canary p-values are in the table below and in "
        "report.json.",
        f"Continuation units: {info['units']}.",
        f"Sampling seed {info['sampling_seed']}: {SAMPLING_SEED_DERIVATION}.",
    ]
    if not iid:
        notes.append(f"Not a bound: {TOKENS_NOT_IID}.")
    if config.documents:
        from canaries.corpus import read_corpus

        rows = extract_documents(ctx.backend, read_corpus(config.documents).texts, config)
        tests.append(
            NamedTest(
                score="document-extraction",
                primary=False,
                result=document_evidence(rows, config.documents),
            )
        )
        notes.append(f"Document extraction on {len(rows)} documents: {DOCUMENT_EVIDENCE_REASON}.")
    items = tuple(
        ItemScores(
            c.id,
            "canary",
            c.text,
            {"greedy-matches": float(e.greedy_matches), "best-of-n-matches": float(e.best_matches)},
        )
        for c, e in zip(cs.canaries, extractions, strict=True)
    )
    return AuditResult(
        title=f"extraction: {ctx.model_spec}",
        role="audit",
        task="extraction",
        task_config=json.loads(json.dumps(asdict(config))),
        model=ctx.model_info(),
        reference=ctx.reference_info(),
        canary_set=ctx.canary_info(),
        audit_seed=ctx.seed().hex(),
        seed_derivation=ctx.seed_derivation() + " (not used by extraction: no counterfactuals; "
        "the sampling seed is derived from public data, see notes)",
        tests=tuple(tests),
        items=items,
        started=started,
        finished=now(),
        notes=tuple(notes),
    )


TASK = Task(
    name="extraction",
    description="prompt with canary prefixes, count reproduced secret units "
    "(exact binomial bounds); "
    "optional document extraction as evidence",
    config_type=ExtractionConfig,
    run=run,
)
