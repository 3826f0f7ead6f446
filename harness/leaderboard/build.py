"""A controlled leaderboard built here: models trained on a corpus of our own with canaries
planted a known number of times, never-planted controls, and membership splits with known
labels, all derived from one seed (the [build] table of a leaderboard config).

Corpus: prose docstrings of Python's standard library, each given a "Published YYYY-MM-DD."
line as a web page carries its date. A seeded shuffle splits them into members (trained on),
held-out documents (never trained on) and a reference model's corpus (disjoint from both).
Splits for `mi-benchmark`: *same* = members vs held-out documents dated from the same years;
*shifted* = the same members vs the same held-out documents dated after the members' years, the
temporal shift of WikiMIA-style benchmarks (Das, Zhang and Tramèr): the texts differ only in
their date line. Canary sets are format v1 drawn from seeds derived from the build seed, so a
rebuild reproduces every file and model (what `tdp verify` needs to re-score).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from canaries.canary_set import CanarySet, Plan, load_canary_set, new_canary_set, save_canary_set
from canaries.drbg import HashDRBG, derive_seed
from harness.leaderboard.config import LeaderboardError
from harness.train import TrainConfig

SEED_LABEL = "tdp-leaderboard-build-v1"
STAMP = "tdp_build.json"


@dataclass(frozen=True)
class ControlledBuild:
    """What to build (every field has a [build] key of the same name; [build.train] sets
    TrainConfig fields)."""

    out: str
    seed: int = 0
    vocab_size: int = 1024
    members: int = 200
    heldout: int = 200
    reference_docs: int = 200
    max_words: int = 32  # MI texts: each document's first words (WikiMIA-style length)
    canaries: int = 16
    counterfactuals: int = 300
    rank_words: int = 8
    extract_words: int = 10
    extract_prefix: int = 4
    repetitions: tuple[int, ...] = (1, 2, 4, 8)
    step_epochs: tuple[int, ...] = (1, 2)  # extra runs of the most-planted model, fewer epochs
    member_years: tuple[int, int] = (2015, 2021)
    shifted_years: tuple[int, int] = (2022, 2024)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6))

    @classmethod
    def from_table(cls, d: dict[str, Any]) -> ControlledBuild:
        d = dict(d)
        if d.pop("recipe", "controlled") != "controlled":
            raise LeaderboardError("[build] recipe must be 'controlled' (the only one there is)")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown or "out" not in d:
            raise LeaderboardError(f"[build]: unknown keys {sorted(unknown)} or no `out` folder "
                                   f"(allowed: {sorted(names)})")
        train = d.pop("train", {})
        try:
            tc = TrainConfig(**{**asdict(TrainConfig(epochs=6)), **train})
            for k in ("repetitions", "step_epochs", "member_years", "shifted_years"):
                if k in d:
                    d[k] = tuple(int(v) for v in d[k])
            return cls(**d, train=tc)
        except (TypeError, ValueError) as e:
            raise LeaderboardError(f"[build]: {e}") from e


@dataclass(frozen=True)
class ModelPlan:
    name: str
    texts: tuple[str, ...]
    train: TrainConfig


def _dated(docs: list[str], years: tuple[int, int], rng: HashDRBG) -> list[str]:
    first, last = date(years[0], 1, 1), date(years[1], 12, 31)
    span = (last - first).days + 1
    return [f"Published {first + timedelta(days=rng.randbelow(span))}.\n{d}" for d in docs]


def _cut(text: str, words: int) -> str:
    return " ".join(text.split()[:words])


def corpus_splits(b: ControlledBuild, docs: list[str]) -> dict[str, list[str]]:
    """members / heldout / reference documents (dated), and the shifted held-out documents."""
    need = b.members + b.heldout + b.reference_docs
    if len(docs) < need:
        raise LeaderboardError(f"[build] asks for {need} documents; the corpus has {len(docs)}")
    seed = derive_seed(SEED_LABEL, str(b.seed), "corpus")
    order = list(range(len(docs)))
    HashDRBG(seed, "documents").shuffle(order)
    pick = [docs[i] for i in order[:need]]
    mem, held = pick[: b.members], pick[b.members : b.members + b.heldout]
    ref = pick[b.members + b.heldout :]
    return {
        "members": _dated(mem, b.member_years, HashDRBG(seed, "member-dates")),
        "heldout": _dated(held, b.member_years, HashDRBG(seed, "heldout-dates")),
        "shifted": _dated(held, b.shifted_years, HashDRBG(seed, "shifted-dates")),
        "reference": _dated(ref, b.member_years, HashDRBG(seed, "reference-dates")),
    }


def _canary_set(b: ControlledBuild, path: Path, name: str, spec: Any, plan: Plan) -> CanarySet:
    """A v1 set whose secret seed and salt derive from the build seed, so that a rebuild
    anywhere has the same commitment (the reports' audit seeds and counterfactuals follow from
    it). Reproducible, hence not secret: a real owner draws fresh secrets (`tdp canaries new`).
    An existing file with the same commitment is kept as it is (its creation time)."""
    cs, secret = new_canary_set(spec, b.canaries, plan, derive_seed(SEED_LABEL, str(b.seed), name))
    cs = replace(cs, salt=derive_seed(SEED_LABEL, str(b.seed), name, "salt").hex())
    cs = replace(cs, commitment=cs.compute_commitment())
    if path.exists() and load_canary_set(path).commitment == cs.commitment:
        return load_canary_set(path)
    save_canary_set(cs, path, secret, force=True)
    return cs


def canary_sets(b: ControlledBuild, out: Path) -> dict[str, CanarySet]:
    from canaries.generators import words_spec

    (out / "canaries").mkdir(parents=True, exist_ok=True)
    rank = Plan(task="canary-rank", score="loss", statistic="rank-sum",
                counterfactuals=b.counterfactuals, alpha=0.01)
    extract = Plan(task="extraction", statistic="extraction-greedy", counterfactuals=1,
                   alpha=0.01)
    spec_r = words_spec(b.rank_words)
    spec_x = words_spec(b.extract_words, prefix_length=b.extract_prefix)
    return {
        "rank": _canary_set(b, out / "canaries/rank.json", "rank", spec_r, rank),
        "extract": _canary_set(b, out / "canaries/extract.json", "extract", spec_x, extract),
        "never": _canary_set(b, out / "canaries/never.json", "never", spec_r, rank),
    }


def model_plans(b: ControlledBuild, splits: dict[str, list[str]], sets: dict[str, CanarySet]
                ) -> list[ModelPlan]:
    """control, x<r> for every repetition, x<max>-e<e> for every step epoch, reference."""
    from canaries.inject import inject_texts

    plans = [ModelPlan("control", tuple(splits["members"]), b.train)]
    planted = {}
    for r in b.repetitions:
        texts = splits["members"]
        for name in ("rank", "extract"):
            seed = derive_seed(SEED_LABEL, str(b.seed), f"inject-{name}-x{r}")
            texts, _ = inject_texts(texts, sets[name], r, seed)
        planted[r] = tuple(texts)
        plans.append(ModelPlan(f"x{r}", planted[r], b.train))
    if b.repetitions:
        top = max(b.repetitions)
        plans += [ModelPlan(f"x{top}-e{e}", planted[top], replace(b.train, epochs=e))
                  for e in b.step_epochs]
    plans.append(ModelPlan("reference", tuple(splits["reference"]), b.train))
    return plans


def _stamp(p: ModelPlan, tokenizer_sha: str) -> str:
    blob = json.dumps({"train": asdict(p.train), "tokenizer": tokenizer_sha,
                       "texts": hashlib.sha256("\0".join(p.texts).encode()).hexdigest()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _train_job(job: tuple[ModelPlan, str, str, str], emit: Any) -> str:
    """Worker: train one model from the saved tokenizer, stamp it; returns its name."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from harness.train import train_causal_lm

    hf_logging.disable_progress_bar()  # the build's own bar is the one display
    plan, tok_dir, out_dir, stamp = job
    emit("start", plan.name, "")
    tok = AutoTokenizer.from_pretrained(tok_dir)
    train_causal_lm(list(plan.texts), tok, plan.train, out_dir, progress=False)
    Path(out_dir, STAMP).write_text(json.dumps({"stamp": stamp}) + "\n")
    emit("done", plan.name, "")
    return plan.name


def write_splits(b: ControlledBuild, splits: dict[str, list[str]], out: Path) -> None:
    from canaries.files import atomic_write_text

    (out / "data").mkdir(parents=True, exist_ok=True)
    for name in ("members", "heldout", "shifted"):
        lines = "".join(json.dumps({"text": _cut(t, b.max_words)}, ensure_ascii=False) + "\n"
                        for t in splits[name])
        atomic_write_text(out / "data" / f"{name}.jsonl", lines, 0o644, True, "split")


def build_models(b: ControlledBuild, workers: Any, progress: bool = True) -> list[str]:
    """Build (or keep, when already built from the same inputs) everything; returns the names
    of the models trained now."""
    from harness.leaderboard.runner import Progress
    from harness.leaderboard.workers import run_jobs
    from harness.train import stdlib_docstrings, train_tokenizer

    out = Path(b.out)
    splits = corpus_splits(b, stdlib_docstrings(max_bytes=10**8))
    sets = canary_sets(b, out)
    write_splits(b, splits, out)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        train_tokenizer(splits["reference"], b.vocab_size).save_pretrained(tok_dir)
    tok_sha = hashlib.sha256((tok_dir / "tokenizer.json").read_bytes()).hexdigest()
    jobs = []
    for p in model_plans(b, splits, sets):
        folder, stamp = out / "models" / p.name, _stamp(p, tok_sha)
        try:
            done = json.loads((folder / STAMP).read_text())["stamp"] == stamp
        except (OSError, ValueError, KeyError):
            done = False
        if not done:
            jobs.append((p, str(tok_dir), str(folder), stamp))
    bar = Progress(len(jobs), 0, progress, "build", "model")
    try:
        return run_jobs(_train_job, jobs, workers, bar)
    finally:
        bar.close()
