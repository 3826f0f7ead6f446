"""`tdp shadow train`: plan a shadow set, then train its models one by one, resumably.

Each model is trained by the harness's own `train_causal_lm` (accelerate: a tiny model from
scratch on CPU, or a given checkpoint fine-tuned, on a GPU when there is one) into a hidden
temporary folder that is swapped in only when complete; its identity then goes into the
manifest, which is rewritten atomically. A killed run leaves every finished model and its
manifest entry; the next run with the same request trains only what is missing. A request with
more models than planned extends the set (pairs are drawn by index, so the first models keep
their halves).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from canaries.drbg import derive_seed
from canaries.files import (
    check_writable_dir,
    clean_leftovers,
    new_tmp_dir,
    remove_path,
    swap_in_dir,
)
from harness.mi.design import model_members, pack_mask
from harness.mi.shadow import (
    MANIFEST,
    POOL_FILE,
    POPULATION_FILE,
    ShadowError,
    ShadowModel,
    ShadowPlan,
    ShadowSet,
    load_shadow_set,
    save_manifest,
    texts_digest,
    with_model,
    write_texts,
)
from harness.provenance import now
from harness.train import TrainConfig, train_causal_lm, train_tokenizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowRequest:
    """What to train: N models on complementary random halves of `pool`."""

    pool: tuple[str, ...]
    n_models: int
    train: TrainConfig
    seed: bytes
    population: tuple[str, ...] = ()
    init_from: str | None = None  # fine-tune this checkpoint instead of training from scratch
    vocab_size: int = 1024  # tokenizer trained on pool + population (from scratch only)

    def __post_init__(self) -> None:
        if self.n_models < 1:
            raise ShadowError(f"a shadow set needs >= 1 model, got {self.n_models}")
        if len(set(self.pool)) < 2:
            raise ShadowError(f"the pool needs >= 2 distinct texts, got {len(set(self.pool))}")
        if len(set(self.pool)) != len(self.pool):
            raise ShadowError("the pool repeats a text; give each candidate once")
        if set(self.pool) & set(self.population):
            raise ShadowError("a population text is also in the pool; the population must be "
                              "texts no shadow model trains on")
        if len(self.seed) < 16:
            raise ShadowError("the shadow seed must be at least 16 bytes")


def _tokenizer(req: ShadowRequest, root: Path | None) -> Any:
    """The tokenizer every model shares: the one stored in the set at `root`, else the
    checkpoint's, else a new one trained on pool + population (not saved here)."""
    from harness.backends.encoding import load_tokenizer

    stored = root / "tokenizer" if root is not None else None
    if stored is not None and (stored / "tokenizer_config.json").exists():
        return load_tokenizer(str(stored))
    if req.init_from is not None:
        return load_tokenizer(req.init_from)
    return train_tokenizer(list(req.pool) + list(req.population), req.vocab_size)


def check_fits(req: ShadowRequest, tokenizer: Any) -> None:
    """Before anything is written: every model's half fills at least one training block, and
    (from scratch, where the context is 2 x block_size) every text fits the context."""
    lengths = {t: len(tokenizer.encode(t, add_special_tokens=False)) + 1 for t in
               (*req.pool, *req.population)}
    for i in range(min(req.n_models, 2)):  # a pair's halves: the smallest is among the first two
        members = model_members(len(req.pool), i, req.seed)
        tokens = sum(lengths[t] for t, k in zip(req.pool, members, strict=True) if k)
        if tokens < req.train.block_size:
            raise ShadowError(f"half of the pool is {tokens} tokens, less than one training block "
                              f"of {req.train.block_size}: give more texts or a smaller "
                              "--block-size")
    context = 2 * req.train.block_size
    longest = max(lengths.values())
    if req.init_from is None and longest > context:
        raise ShadowError(f"a text has {longest} tokens but the models' context is {context} "
                          f"(2 x block size): use --block-size >= {(longest + 1) // 2} or "
                          "shorter texts")


def _init_identity(init_from: str | None) -> str | None:
    if init_from is None or not Path(init_from).is_dir():
        return None
    from harness.backends.identity import identity_of_dir

    return identity_of_dir(init_from).digest()


def plan_for(req: ShadowRequest, tokenizer_digest: str) -> ShadowPlan:
    return ShadowPlan(
        seed=req.seed.hex(),
        pool_sha256=texts_digest(req.pool),
        pool_count=len(req.pool),
        population_sha256=texts_digest(req.population) if req.population else None,
        population_count=len(req.population),
        train=asdict(req.train),
        tokenizer=tokenizer_digest,
        init_from=req.init_from,
        init_identity=_init_identity(req.init_from),
        vocab_size=None if req.init_from else req.vocab_size,
    )


def model_entry(req: ShadowRequest, index: int) -> ShadowModel:
    mask = model_members(len(req.pool), index, req.seed)
    seed = int.from_bytes(derive_seed("tdp-shadow-train", req.seed, str(index))[:4], "big")
    return ShadowModel(f"model-{index:03d}", index, seed, pack_mask(mask), int(mask.sum()))


def _differences(old: ShadowPlan, new: ShadowPlan) -> list[str]:
    return [k for k, v in asdict(new).items() if asdict(old)[k] != v]


def open_shadow_set(root: Path, req: ShadowRequest, force: bool = False) -> ShadowSet:
    """The set at `root` for this request: resumed if its plan matches, else started anew."""
    from canaries.tokenizer_identity import tokenizer_digest

    root = Path(root)
    check_writable_dir(root, "shadow-set folder")
    if (root / MANIFEST).exists():
        old = load_shadow_set(root)
        plan = plan_for(req, tokenizer_digest(_tokenizer(req, root)))
        diff = _differences(old.plan, plan)
        if not diff and req.n_models >= len(old.models):
            extra = tuple(model_entry(req, i) for i in range(len(old.models), req.n_models))
            s = replace(old, models=old.models + extra)
            save_manifest(s)
            return s
        if not force:
            why = f"differs in {', '.join(diff)}" if diff else f"plans {len(old.models)} models"
            raise ShadowError(f"{root} holds a shadow set whose plan {why}; use --force to "
                              "replace it, or another folder")
        remove_path(root)
    elif root.exists() and any(root.iterdir()):
        if not force:
            raise ShadowError(f"{root} exists and is not a shadow set; refusing to write into "
                              "it (use --force or another folder)")
        remove_path(root)
    tokenizer = _tokenizer(req, None)
    check_fits(req, tokenizer)
    root.mkdir(parents=True, exist_ok=True)
    write_texts(root / POOL_FILE, req.pool)
    if req.population:
        write_texts(root / POPULATION_FILE, req.population)
    tokenizer.save_pretrained(root / "tokenizer")
    plan = plan_for(req, tokenizer_digest(tokenizer))
    models = tuple(model_entry(req, i) for i in range(req.n_models))
    s = ShadowSet(root, now(), plan, models, req.pool, req.population)
    save_manifest(s)
    return s


def train_one(s: ShadowSet, model: ShadowModel, tokenizer: Any, progress: bool) -> ShadowModel:
    """Train one model into a temporary folder, swap it in, and return its finished entry."""
    from harness.backends.identity import identity_of_dir

    keep = s.keep((model,))[0]
    texts = [t for t, k in zip(s.pool, keep, strict=True) if k]
    config = TrainConfig(**{**s.plan.train, "seed": model.train_seed})
    final = s.model_dir(model)
    clean_leftovers(final)
    tmp = new_tmp_dir(final)
    result = train_causal_lm(texts, tokenizer, config, tmp, progress=progress,
                             desc=f"shadow {model.name}", init_from=s.plan.init_from)
    identity = identity_of_dir(tmp, tokenizer).digest()
    swap_in_dir(tmp, final, force=True, what="shadow model folder")
    trained = {k: v for k, v in asdict(result).items() if k != "path"}
    return replace(model, identity=identity, trained=trained)


def train_shadow_set(
    root: str | Path,
    req: ShadowRequest,
    force: bool = False,
    progress: bool = True,
    say: Callable[[str], None] = log.info,
) -> ShadowSet:
    """Plan (or resume) the set at `root` and train every model it still lacks."""
    s = open_shadow_set(Path(root), req, force)
    tokenizer = _tokenizer(req, s.root)
    todo = [m for m in s.models if not m.done]
    say(f"shadow set {s.root}: {len(s.models) - len(todo)} of {len(s.models)} models trained; "
        f"training {len(todo)}")
    for model in todo:
        done = train_one(s, model, tokenizer, progress)
        s = with_model(s, done)
        save_manifest(s)
        say(f"{done.name}: {done.n_members} texts, {done.trained['seconds']:.1f} s, "
            f"final loss {done.trained['final_loss']:.3f}, identity {done.identity[:16]}")
    return s
