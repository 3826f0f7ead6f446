"""Controlled membership-inference benchmark on models trained here: LiRA, RMIA and reference
calibration from a shadow set, beside loss, zlib, Min-K%, Min-K%++ and ref_ratio.

Ground truth by construction. One corpus of one distribution (paragraphs of the running Python's
stdlib docstrings, 120-500 characters) is split, by a seeded shuffle, into a candidate pool and a
population (every other text: no shadow or target model trains on them; RMIA's z). Shadow models
train on complementary random halves of the pool (`tdp shadow train`'s code); two target models
train on a complementary pair of halves drawn with a different seed, so every pool text is a
member of one target and a non-member of the other; a reference model (for `ref_ratio`) trains
on the population, never on the pool. Every model has the same tiny GPT-2 architecture and
recipe, and the shared tokenizer of the shadow set.

Outputs (OUT, default results/mi-benchmark-lira/): README.md (tables), results.json,
roc.png (log-log), shadow_curve.png. Models and the score cache go to WORK (default OUT/work,
git-ignored); every step resumes. Run from the repository root:

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/mi_lira.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mi_lira_report import write_outputs  # noqa: E402
from canaries.drbg import HashDRBG, derive_seed  # noqa: E402
from canaries.files import new_tmp_dir, swap_in_dir  # noqa: E402
from harness.backends import load_backend  # noqa: E402
from harness.backends.encoding import load_tokenizer  # noqa: E402
from harness.cache import ScoreCache  # noqa: E402
from harness.mi.attacks import run_attacks  # noqa: E402
from harness.mi.design import model_members  # noqa: E402
from harness.mi.estimates import class_means  # noqa: E402
from harness.mi.evaluate import evaluate  # noqa: E402
from harness.mi.lira import lira_offline, lira_online  # noqa: E402
from harness.mi.observe import ShadowObservations, observe  # noqa: E402
from harness.mi.rmia import rmia, rmia_ratio  # noqa: E402
from harness.mi.shadow_train import ShadowRequest, train_shadow_set  # noqa: E402
from harness.mi.signals import statistic_matrix, statistic_vector  # noqa: E402
from harness.scoring import ScoringRequest, score_texts  # noqa: E402
from harness.train import TrainConfig, stdlib_docstrings, train_causal_lm  # noqa: E402

BASELINES = ("loss", "zlib", "min_k", "min_k_pp", "ref_ratio")
ATTACKS = ("ref_calibration", "lira_online", "lira_offline", "rmia", "rmia_online")
CURVE_ATTACKS = ("lira_online", "lira_offline", "rmia", "ref_calibration")
FPRS = (0.001, 0.01)


@dataclass(frozen=True)
class BenchConfig:
    pool: int = 2400
    min_population: int = 400
    shadows: int = 16
    curve: tuple[int, ...] = (1, 2, 4, 8, 16)
    vocab_size: int = 1024
    bootstrap: int = 1000
    curve_bootstrap: int = 300
    seed: str = "mi-lira-bench-v1"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        n_layer=1, n_embd=64, n_head=2, block_size=160, epochs=10, batch_size=16, lr=3e-3,
        warmup_steps=20))


QUICK = BenchConfig(pool=240, min_population=60, shadows=4, curve=(1, 2, 4), bootstrap=100,
                    curve_bootstrap=50, train=TrainConfig(n_layer=1, n_embd=32, n_head=2,
                                                          block_size=128, epochs=3))


def corpus() -> list[str]:
    """Prose paragraphs of stdlib docstrings, 120-500 characters, whitespace collapsed, unique."""
    paras = []
    for doc in stdlib_docstrings(max_bytes=10**9, min_chars=100):
        for p in re.split(r"\n\s*\n", doc):
            p = " ".join(p.split())
            letters = sum(c.isalpha() or c.isspace() for c in p)
            if 120 <= len(p) <= 500 and p.isascii() and letters / len(p) > 0.85:
                paras.append(p)
    return list(dict.fromkeys(paras))


def split(texts: list[str], cfg: BenchConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(pool, population): a seeded shuffle; the population is every text outside the pool."""
    order = list(range(len(texts)))
    HashDRBG(derive_seed(cfg.seed, "split"), "split").shuffle(order)
    if len(texts) < cfg.pool + cfg.min_population:
        raise SystemExit(f"corpus has {len(texts)} texts; need {cfg.pool + cfg.min_population}")
    pick = [texts[i] for i in order]
    return tuple(pick[: cfg.pool]), tuple(pick[cfg.pool:])


def train_once(out: Path, texts: list[str], tokenizer, config: TrainConfig) -> Path:
    """Train into a temporary folder swapped in when complete; skip a finished one."""
    if (out / "tdp_training.json").exists():
        return out
    tmp = new_tmp_dir(out)
    train_causal_lm(texts, tokenizer, config, tmp, progress=False, desc=out.name)
    return swap_in_dir(tmp, out, force=True)


def train_all(work: Path, cfg: BenchConfig, pool, population):
    t0 = time.time()
    req = ShadowRequest(pool, cfg.shadows, cfg.train, derive_seed(cfg.seed, "shadow"),
                        population, vocab_size=cfg.vocab_size)
    shadow = train_shadow_set(work / "shadow", req, progress=False, say=print)
    tok = load_tokenizer(str(shadow.root / "tokenizer"))
    tseed = derive_seed(cfg.seed, "targets")
    targets = []
    for t in range(2):
        members = model_members(len(pool), t, tseed)
        texts = [x for x, m in zip(pool, members, strict=True) if m]
        config = TrainConfig(**{**asdict(cfg.train), "seed": 1000 + t})
        targets.append((train_once(work / f"target-{t}", texts, tok, config), members))
    ref = train_once(work / "reference", list(population), tok,
                     TrainConfig(**{**asdict(cfg.train), "seed": 2000}))
    print(f"models ready in {time.time() - t0:.0f} s", flush=True)
    return shadow, targets, ref


def training_seconds(shadow, targets, ref: Path) -> float:
    """Seconds the 19 models took to train, as recorded when each was trained."""
    own = sum(m.trained["seconds"] for m in shadow.models)
    paths = [p for p, _ in targets] + [ref]
    return own + sum(json.loads((p / "tdp_training.json").read_text())["result"]["seconds"]
                     for p in paths)


def baselines(texts, target, reference, seed, cache) -> dict[str, np.ndarray]:
    req = ScoringRequest(BASELINES, {"min_k": {"k": 0.2}, "min_k_pp": {"k": 0.2}})
    rows = score_texts(texts, target, req, seed, reference=reference, cache=cache)
    return {n: np.array([r[n] for r in rows]) for n in BASELINES}


def ablations(obs: ShadowObservations) -> dict[str, np.ndarray]:
    """RMIA's ratio without the population's ties, LiRA with per-text variance, and LiRA on the
    unscaled mean log-prob."""
    t, s = statistic_vector("logit_confidence", obs.target), statistic_matrix(
        "logit_confidence", obs.shadows)
    tm, sm = statistic_vector("mean_logprob", obs.target), statistic_matrix(
        "mean_logprob", obs.shadows)
    px = statistic_vector("sequence_probability", obs.target)
    rx = statistic_matrix("sequence_probability", obs.shadows)
    return {
        "rmia_online [ratio_x, no population ties]": rmia_ratio(px, rx, obs.keep, True),
        "lira_online [per-text variance]": lira_online(t, s, obs.keep, "per-text").scores,
        "lira_offline [per-text variance]": lira_offline(t, s, obs.keep, "per-text").scores,
        "lira_online [mean log-prob, no logit scaling]": lira_online(tm, sm, obs.keep).scores,
    }


OFFSET = {"offset": "population"}


def offset_rows(obs: ShadowObservations) -> dict[str, np.ndarray]:
    """LiRA with every model's population median subtracted (a model-level shift removed)."""
    out = run_attacks(obs, ["lira_online", "lira_offline"],
                      {"lira_online": OFFSET, "lira_offline": OFFSET})
    return {f"{k} [population offset]": v.scores for k, v in out.items()}


def diagnostics(obs: ShadowObservations) -> dict:
    """Model-level shifts (population medians of the LiRA statistic) and the mean IN-OUT gap."""
    s = statistic_matrix("logit_confidence", obs.shadows)
    m_in, m_out = class_means(s, obs.keep)
    shadow = np.median(statistic_matrix("logit_confidence", obs.population_shadows), axis=1)
    target = float(np.median(statistic_vector("logit_confidence", obs.population_target)))
    return {"shadow_offsets": [float(x) for x in shadow], "target_offset": target,
            "shadow_offset_range": float(shadow.max() - shadow.min()),
            "mean_gap": float(np.mean(m_in.mean - m_out.mean))}


def curve_scores(obs: ShadowObservations, n: int) -> dict[str, np.ndarray]:
    """The curve's attacks with the first n shadow models (RMIA's a tuned when n >= 2)."""
    sub = obs.subset(range(n))
    out = {k: v.scores for k, v in run_attacks(sub, [a for a in CURVE_ATTACKS if a != "rmia"],
                                               {"lira_online": {"variance": "global"},
                                                "lira_offline": {"variance": "global"}}).items()}
    online = run_attacks(sub, ["lira_online"], {"lira_online": {**OFFSET, "variance": "global"}})
    out["lira_online [population offset]"] = online["lira_online"].scores
    if n >= 2:
        out["rmia"] = run_attacks(sub, ["rmia"])["rmia"].scores
    else:  # one reference model cannot tune a (it needs one to attack and one to use)
        px = statistic_vector("sequence_probability", sub.target)
        rx = statistic_matrix("sequence_probability", sub.shadows)
        pz = statistic_vector("sequence_probability", sub.population_target)
        rz = statistic_matrix("sequence_probability", sub.population_shadows)
        out["rmia"] = rmia(px, rx, sub.keep, pz, rz, online=False, a=1.0).scores
    return out


def run(cfg: BenchConfig, work: Path) -> dict:
    pool, population = split(corpus(), cfg)
    shadow, targets, ref_dir = train_all(work, cfg, pool, population)
    cache, seed = ScoreCache(work / "cache"), derive_seed(cfg.seed, "scoring")
    ref = load_backend(f"hf:{ref_dir}")
    scores: dict[str, list[np.ndarray]] = {}
    curve: dict[int, dict[str, list[np.ndarray]]] = {n: {} for n in cfg.curve}
    labels, details, diag, t0 = [], {}, {}, time.time()
    for path, members in targets:
        target = load_backend(f"hf:{path}")
        obs = observe(pool, target, shadow, seed, cache)
        attacks = run_attacks(obs, ATTACKS)
        details[path.name] = {k: v.details for k, v in attacks.items()}
        diag[path.name] = diagnostics(obs)
        rows = {**baselines(list(pool), target, ref, seed, cache),
                **{k: v.scores for k, v in attacks.items()}, **offset_rows(obs),
                **ablations(obs)}
        for k, v in rows.items():
            scores.setdefault(k, []).append(v)
        for n in cfg.curve:
            for k, v in curve_scores(obs, n).items():
                curve[n].setdefault(k, []).append(v)
        labels.append(members)
    print(f"scored and attacked in {time.time() - t0:.0f} s", flush=True)
    y = np.concatenate(labels)
    flat = {k: np.concatenate(v) for k, v in scores.items()}
    return {
        "config": asdict(cfg), "sizes": {"pool": len(pool), "population": len(population)},
        "training_seconds": training_seconds(shadow, targets, ref_dir),
        "shadow": shadow, "is_member": y, "scores": flat,
        "metrics": evaluate(flat, y, FPRS, cfg.bootstrap),
        "curve": {n: evaluate({k: np.concatenate(v) for k, v in c.items()}, y, FPRS,
                              cfg.curve_bootstrap) for n, c in curve.items()},
        "details": details,
        "diagnostics": {**diag[targets[0][0].name], "targets": {
            k: v["target_offset"] for k, v in diag.items()}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("results/mi-benchmark-lira"))
    ap.add_argument("--work", type=Path, help="models and cache (default OUT/work)")
    ap.add_argument("--quick", action="store_true", help="a small smoke run (minutes)")
    args = ap.parse_args()
    cfg = QUICK if args.quick else BenchConfig()
    t0 = time.time()
    result = run(cfg, args.work or args.out / "work")
    result["seconds"] = time.time() - t0
    write_outputs(result, args.out, " ".join(["bench/mi_lira.py"] + sys.argv[1:]))
    print((args.out / "README.md").read_text())
    print(json.dumps({"wrote": str(args.out), "seconds": round(result["seconds"])}))


if __name__ == "__main__":
    main()
