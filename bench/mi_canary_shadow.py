"""Does calibrating canaries with shadow models buy power over `loss` and `ref_ratio`?

Protocol v2 end to end, locally (a local test TSA and beacon stand in for real ones): a shadow
set (N tiny models on complementary halves of a clean corpus C) is trained and timestamped
first; then G canary sets are committed, their beacon round passes and the canaries are
assigned; each set's canaries are planted r times into C and one target per r is trained;
a clean reference model trains on C. Every set is then tested by the same rank-sum test
(K canaries against the pool's M counterfactuals) with four scores:

- loss: the target's mean token log-prob;
- ref_ratio: minus the clean reference's (the harness's committed-reference score);
- shadow ref_calibration: minus the mean over the N shadow models (`shadow_canary_test`);
- shadow lira_offline: the same, logit-scaled and variance-normalised.

The shadow scores run only through `shadow_canary_test`, i.e. only after the check that the
shadow set was fixed before the round and shares no text with the pool. Repeated over
replicates (fresh beacon, sets and targets each; the shadows and the reference are shared), with
never-planted sets as null controls. Prints the detection rate at alpha and the median log10 p
per (r, score); writes results/mi-canary-shadow/.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/mi_canary_shadow.py
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from canaries.canary_set import CanarySet, Plan  # noqa: E402
from canaries.drbg import derive_seed  # noqa: E402
from canaries.files import atomic_write_text, new_tmp_dir, swap_in_dir  # noqa: E402
from canaries.generators import words_spec  # noqa: E402
from canaries.inject import inject_texts  # noqa: E402
from harness.backends import load_backend  # noqa: E402
from harness.backends.encoding import load_tokenizer  # noqa: E402
from harness.cache import ScoreCache  # noqa: E402
from harness.mi.shadow import ShadowSet  # noqa: E402
from harness.mi.shadow_canary import add_shadow_timestamp, shadow_canary_test  # noqa: E402
from harness.mi.shadow_train import ShadowRequest, train_shadow_set  # noqa: E402
from harness.protocol.beacon import round_time  # noqa: E402
from harness.protocol.local_beacon import LocalTestBeacon  # noqa: E402
from harness.protocol.local_tsa import LocalTSA  # noqa: E402
from harness.protocol.pool import assign, commit, scoring_seed  # noqa: E402
from harness.protocol.timestamp import record_from_reply, timestamp_request  # noqa: E402
from harness.provenance import now, provenance  # noqa: E402
from harness.scoring import ScoringRequest, score_texts  # noqa: E402
from harness.stats.plan import run_statistic  # noqa: E402
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm  # noqa: E402

TRAIN = TrainConfig(n_layer=1, n_embd=64, n_head=2, block_size=96, epochs=12, batch_size=16,
                    lr=5e-3, warmup_steps=5)
SCORES = ("loss", "ref_ratio", "shadow ref_calibration", "shadow lira_offline")


def clean_corpus(max_bytes: int) -> tuple[str, ...]:
    paras = [" ".join(p.split()) for d in stdlib_docstrings(max_bytes)
             for p in re.split(r"\n\s*\n", d)]
    return tuple(p for p in dict.fromkeys(paras) if 40 <= len(p) <= 300)


def train_once(out: Path, texts: list[str], tok, seed: int) -> Path:
    if (out / "tdp_training.json").exists():
        return out
    tmp = new_tmp_dir(out)
    train_causal_lm(texts, tok, TrainConfig(**{**TRAIN.__dict__, "seed": seed}), tmp,
                    progress=False)
    return swap_in_dir(tmp, out, force=True)


def stamped_shadows(work: Path, corpus: tuple[str, ...], n: int, tsa: LocalTSA) -> ShadowSet:
    req = ShadowRequest(corpus, n, TRAIN, derive_seed("canary-shadow-bench", "design"),
                        vocab_size=512)
    s = train_shadow_set(work / "shadow", req, progress=False, say=print)
    request = timestamp_request(s.digest())
    record = record_from_reply(tsa.stamp(request), s.digest(), tsa.chain_pem, request)
    return add_shadow_timestamp(s, record)[0]


def assigned_sets(g: int, k: int, m: int, beacon: LocalTestBeacon, tag: str) -> list[CanarySet]:
    """G v2 sets committed now, their round awaited, their canaries assigned."""
    plan = Plan(score="loss", statistic="rank-sum", counterfactuals=m, alpha=0.01)
    pending = []
    for i in range(g):
        seed = derive_seed("canary-shadow-bench", "set", tag, str(i))
        cs, _ = commit(words_spec(6, prefix_length=2), k, plan, beacon.chain, 3.0, seed)
        pending.append((cs, seed))
    last = max(round_time(beacon.chain, cs.beacon["round"]) for cs, _ in pending)
    time.sleep(max(0.0, last - time.time() + 0.1))
    return [assign(cs, seed, beacon.sign(int(cs.beacon["round"]))) for cs, seed in pending]


def p_values(cs: CanarySet, target, reference, shadow: ShadowSet, cache) -> dict[str, float]:
    seed = scoring_seed(cs)
    texts = [c.text for c in cs.canaries] + [c.text for c in cs.counterfactuals]
    rows = score_texts(texts, target, ScoringRequest(("loss", "ref_ratio"), {}), seed,
                       reference=reference, cache=cache)
    k, out = len(cs.canaries), {}
    for name in ("loss", "ref_ratio"):
        s = np.array([r[name] for r in rows])
        out[name] = run_statistic("rank-sum", s[:k], s[k:]).log10_pvalue
    for name in ("ref_calibration", "lira_offline"):
        r = shadow_canary_test(cs, target, shadow, seed, name, cache)
        out[f"shadow {name}"] = r.log10_pvalue
    return out


def table(results: dict[int, list[dict[str, float]]], alpha: float) -> str:
    rows = ["| r | " + " | ".join(f"{s}: detected / median log10 p" for s in SCORES) + " |",
            "|---:|" + "---|" * len(SCORES)]
    for r, sets in sorted(results.items()):
        cells = []
        for s in SCORES:
            lp = np.array([x[s] for x in sets])
            cells.append(f"{int((lp <= np.log10(alpha)).sum())}/{lp.size} / {np.median(lp):.2f}")
        rows.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def paired(results: dict[int, list[dict[str, float]]]) -> list[str]:
    """Per (set, r), the shadow score's p against each single-model score's p."""
    rows = [x for sets in results.values() for x in sets]
    out = []
    for base in ("loss", "ref_ratio"):
        for s in ("shadow ref_calibration", "shadow lira_offline"):
            d = np.array([x[s] - x[base] for x in rows])
            out.append(f"- {s} vs {base}: smaller p in {int((d < 0).sum())} of {d.size} "
                       f"(set, r) pairs, median log10 p difference {np.median(d):+.2f}")
    return out


def null_lines(null: list[dict[str, float]], alpha: float) -> list[str]:
    out = []
    for s in SCORES:
        lp = np.array([x[s] for x in null])
        out.append(f"- {s}: {int((lp <= np.log10(alpha)).sum())} of {lp.size} at p <= {alpha}, "
                   f"smallest p {10 ** lp.min():.3g}, median p {10 ** np.median(lp):.2f}")
    return out


def replicate(i: int, args, corpus, shadow: ShadowSet, tok, reference, cache, stamp: int):
    """One replicate: fresh beacon and sets, one target per r; (p-values per r, null p-values)."""
    sets = assigned_sets(args.sets + args.null_sets, 8, 200, LocalTestBeacon.create(), str(i))
    sets, nulls = sets[: args.sets], sets[args.sets:]
    results: dict[int, list[dict[str, float]]] = {}
    null: list[dict[str, float]] = []
    targets = []
    for r in (int(x) for x in args.repeats.split(",")):
        texts = list(corpus)
        for j, cs in enumerate(sets):
            texts, _ = inject_texts(texts, cs, r, derive_seed("canary-shadow-bench", "inj",
                                                              f"{i}-{j}"))
        folder = args.out / "work" / f"target-{stamp}-rep{i}-r{r}"
        target = load_backend(f"hf:{train_once(folder, texts, tok, 100 * i + r)}")
        results[r] = [p_values(cs, target, reference, shadow, cache) for cs in sets]
        null += [p_values(cs, target, reference, shadow, cache) for cs in nulls]
        targets.append(target)
        print(f"replicate {i}, r={r}: done", flush=True)
    planted = {c.text for cs in sets for c in cs.canaries}
    return results, null, targets, planted


def null_calibration(targets: list, reference, shadow: ShadowSet, cache, n_sets: int,
                     exclude: set[str]) -> dict[str, np.ndarray]:
    """The null law of every score on these targets, measured directly: n_sets disjoint fresh
    sets of 8 + 200 generator draws per target, other draws for every target so that all
    p-values are independent (none ever planted). The draws postdate the shadow set's
    timestamp, as an assigned pool does; this measures the score, not the check."""
    from canaries.drbg import HashDRBG
    from canaries.generators import draw_canaries
    from harness.mi.attacks import run_attacks
    from harness.mi.observe import observe

    rng = HashDRBG(derive_seed("canary-shadow-bench", "null-calibration"), "null")
    every = [c.text for c in draw_canaries(words_spec(6, prefix_length=2), rng,
                                           len(targets) * n_sets * 208, exclude=exclude)]
    seed = derive_seed("canary-shadow-bench", "null-order")
    out: dict[str, list[float]] = {s: [] for s in SCORES}
    for t, target in enumerate(targets):
        texts = every[t * n_sets * 208: (t + 1) * n_sets * 208]
        rows = score_texts(texts, target, ScoringRequest(("loss", "ref_ratio"), {}), seed,
                           reference=reference, cache=cache)
        obs = observe(texts, target, shadow, seed, cache, population=False)
        shadow_scores = run_attacks(obs, ["ref_calibration", "lira_offline"])
        values = {"loss": np.array([r["loss"] for r in rows]),
                  "ref_ratio": np.array([r["ref_ratio"] for r in rows]),
                  **{f"shadow {k}": v.scores for k, v in shadow_scores.items()}}
        for name, v in values.items():
            for j in range(n_sets):
                block = v[208 * j: 208 * (j + 1)]
                out[name].append(run_statistic("rank-sum", block[:8], block[8:]).pvalue)
    return {k: np.array(v) for k, v in out.items()}


def calibration_lines(pvals: dict[str, np.ndarray]) -> list[str]:
    from scipy.stats import kstest

    lines = []
    for name, p in pvals.items():
        lines.append(f"- {name}: {int((p <= 0.01).sum())} of {p.size} at p <= 0.01, "
                     f"{int((p <= 0.001).sum())} at p <= 0.001, smallest p {p.min():.3g}, "
                     f"KS test against uniform p = {kstest(p, 'uniform').pvalue:.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("results/mi-canary-shadow"))
    ap.add_argument("--repeats", default="1,2,4,8")
    ap.add_argument("--sets", type=int, default=8)
    ap.add_argument("--null-sets", type=int, default=8, help="sets never planted (H0 controls)")
    ap.add_argument("--replicates", type=int, default=3, help="fresh sets and targets each")
    ap.add_argument("--calibration-sets", type=int, default=100,
                    help="fresh null sets per target for the null calibration")
    ap.add_argument("--shadows", type=int, default=8)
    ap.add_argument("--corpus-bytes", type=int, default=150_000)
    args = ap.parse_args()
    t0, work, alpha = time.time(), args.out / "work", 0.01
    corpus = clean_corpus(args.corpus_bytes)
    tsa = LocalTSA.create(work / f"tsa-{int(t0)}")
    shadow = stamped_shadows(work, corpus, args.shadows, tsa)
    tok = load_tokenizer(str(shadow.root / "tokenizer"))
    reference = load_backend(f"hf:{train_once(work / 'reference', list(corpus), tok, 7)}")
    cache = ScoreCache(work / "cache")
    results: dict[int, list[dict[str, float]]] = {}
    null: list[dict[str, float]] = []
    for i in range(args.replicates):
        rep, rep_null, targets, planted = replicate(i, args, corpus, shadow, tok, reference,
                                                    cache, int(t0))
        for r, v in rep.items():
            results.setdefault(r, []).extend(v)
        null += rep_null
    calib = null_calibration(targets, reference, shadow, cache, args.calibration_sets, planted)
    n = args.sets * args.replicates
    text = "\n".join([
        "# Shadow-calibrated canary scores vs loss and ref_ratio (protocol v2, local chain)", "",
        f"Generated {now()} by `bench/mi_canary_shadow.py {' '.join(sys.argv[1:])}` in "
        f"{(time.time() - t0) / 60:.1f} min. {args.replicates} replicates x {args.sets} v2 "
        f"canary sets of K = 8 six-word canaries, M = 200 counterfactuals each, planted r times "
        f"into a {len(corpus)}-paragraph clean corpus (one target per replicate and r); rank-sum "
        f"test, alpha = {alpha}; {args.shadows} shadow models on halves of the clean corpus, "
        "timestamped (local test TSA) before every set's beacon round. Same tiny GPT-2 recipe "
        "and tokenizer for every model. Every p-value is an exact bound.", "",
        f"Detected sets (of {n}) and median log10 p:", "",
        table(results, alpha), "",
        "Sets of one replicate and r share a target model. Paired over every (set, r):", "",
        *paired(results), "",
        f"Null controls: {args.null_sets} more sets per replicate committed and assigned the same "
        f"way but never planted, tested on every target ({len(null)} p-values per score; under "
        "H0 each is uniform or larger):", "", *null_lines(null, alpha), "",
        f"Null calibration of the scores themselves: {args.calibration_sets} disjoint fresh sets "
        f"(8 + 200 generator draws, never planted; other draws for every target, so all "
        f"p-values are independent) on each of the last replicate's {len(targets)} targets:",
        "", *calibration_lines(calib), ""])
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "README.md", text)
    atomic_write_text(args.out / "results.json", json.dumps(
        {"log10_p": {str(r): v for r, v in results.items()}, "null_log10_p": null, "alpha": alpha,
         "calibration_p": {k: [float(x) for x in v] for k, v in calib.items()},
         "shadow_digest": shadow.digest(), "provenance": provenance()}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
