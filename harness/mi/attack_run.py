"""`tdp shadow attack`: shadow-model attacks on labelled member / non-member texts, written as a
folder (attack.json, table.md, roc.png). Every number in it is an estimate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from canaries.corpus import read_corpus
from canaries.drbg import derive_seed
from canaries.files import (
    atomic_write_bytes,
    atomic_write_text,
    check_new_output,
    check_writable_dir,
    new_tmp_dir,
    swap_in_dir,
)
from harness.backends import load_backend
from harness.cache import ScoreCache, default_cache_dir
from harness.mi.attacks import ATTACKS, get_attack, run_attacks
from harness.mi.evaluate import FPRS, evaluate, markdown_table, roc_loglog_png
from harness.mi.observe import observe
from harness.mi.shadow import ShadowError, load_shadow_set, texts_digest
from harness.mi.signals import statistic_vector
from harness.provenance import now

SCHEMA = 1
OFFSET_ATTACKS = ("lira_online", "lira_offline", "ref_calibration")
NOTE = ("Membership inference on natural text is evidence, not proof: these AUC and TPR figures "
        "are estimates with no false-positive bound. For a proof, plant random canaries.")


def default_attacks(has_population: bool) -> list[str]:
    return [n for n, a in ATTACKS.items() if has_population or not a.needs_population]


def run_labelled_attack(folder: Path, model: str, members: Path, nonmembers: Path,
                        attacks: Sequence[str], out: Path, bootstrap: int = 1000,
                        force: bool = False, population_offset: bool = False) -> Path:
    """Score, attack, measure, and write the result folder; returns its path."""
    check_new_output(Path(out), force, "output folder")
    check_writable_dir(Path(out).parent, "output folder")
    shadow = load_shadow_set(folder)
    names = list(attacks) or default_attacks(bool(shadow.population))
    for n in names:
        if get_attack(n).needs_population and not shadow.population:
            raise ShadowError(f"attack {n!r} needs a population; {folder} has none")
    if population_offset and not shadow.population:
        raise ShadowError(f"--population-offset needs a population; {folder} has none")
    options = {n: {"offset": "population"} for n in OFFSET_ATTACKS} if population_offset else {}
    mem, non = read_corpus(members).texts, read_corpus(nonmembers).texts
    texts = list(mem) + list(non)
    is_member = np.array([True] * len(mem) + [False] * len(non))
    backend = load_backend(model)
    seed = derive_seed("tdp-shadow-attack", texts_digest(tuple(texts)))
    obs = observe(texts, backend, shadow, seed, ScoreCache(default_cache_dir()),
                  population=population_offset or any(get_attack(n).needs_population
                                                      for n in names))
    results = run_attacks(obs, names, options)
    scores = {"loss": statistic_vector("mean_logprob", obs.target)}
    scores.update({n: r.scores for n, r in results.items()})
    metrics = evaluate(scores, is_member, FPRS, bootstrap)
    doc = {
        "schema": SCHEMA, "kind": "estimate", "created": now(), "note": NOTE,
        "model": {"spec": model, "fingerprint": backend.fingerprint().to_dict()},
        "shadow_set": {"folder": str(shadow.root), "models": list(obs.names),
                       "pool_sha256": shadow.plan.pool_sha256},
        "members": len(mem), "nonmembers": len(non), "options": options,
        "fpr_rule": "TPR at FPR <= x: largest TPR over thresholds with FPR <= x (inclusive)",
        "scores": {n: {"metrics": m.to_dict(),
                       **({"statistic": results[n].statistic,
                           "assumptions": list(results[n].assumptions),
                           "details": results[n].details} if n in results else
                          {"statistic": "mean_logprob", "assumptions": ["global threshold"]})}
                   for n, m in metrics.items()},
    }
    tmp = new_tmp_dir(Path(out))
    atomic_write_text(tmp / "attack.json", json.dumps(doc, indent=1, default=float) + "\n")
    atomic_write_text(tmp / "table.md", markdown_table(metrics) + "\n\n" + NOTE + "\n")
    curves = {n: (s[is_member], s[~is_member]) for n, s in scores.items()}
    atomic_write_bytes(tmp / "roc.png", roc_loglog_png(curves, f"{model} vs {len(obs.names)} "
                                                       "shadow models"))
    return swap_in_dir(tmp, Path(out), force)
