"""Train a GPT-2-style causal LM from scratch on a text corpus with accelerate; save as HF."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from harness.train.pol import PoLOptions


@dataclass(frozen=True)
class TrainConfig:
    """Model size and optimisation settings; the defaults train in about a minute on 2 CPU cores."""

    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    block_size: int = 64
    epochs: int = 3
    batch_size: int = 16
    lr: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    path: str
    parameters: int
    tokens_per_epoch: int
    steps: int
    final_loss: float
    seconds: float


def encode_documents(texts: Sequence[str], tokenizer: Any) -> list[list[int]]:
    """Token ids of each document, without special tokens (what `pack_blocks` concatenates)."""
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def pack_blocks(texts: Sequence[str], tokenizer: Any, block_size: int) -> torch.Tensor:
    """Concatenate documents with EOS between them and cut into (n, block_size) blocks."""
    return pack_encoded(encode_documents(texts, tokenizer), tokenizer.eos_token_id, block_size)


def pack_encoded(encoded: Sequence[list[int]], eos: int, block_size: int) -> torch.Tensor:
    """`pack_blocks` on documents already encoded."""
    ids: list[int] = []
    for doc in encoded:
        ids.extend(doc)
        ids.append(eos)
    n = len(ids) // block_size
    if n == 0:
        raise ValueError(f"corpus of {len(ids)} tokens is shorter than one block of {block_size}")
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)


def gpt2_config(config: TrainConfig, tokenizer: Any) -> dict[str, Any]:
    """The GPT2Config arguments of the model `train_causal_lm` builds (recorded in PoL logs)."""
    return {
        "vocab_size": len(tokenizer),
        "n_positions": config.block_size * 2,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "loss_type": "ForCausalLM",
    }


def lm_loss(model: Any, batch: torch.Tensor) -> torch.Tensor:
    """The training loss of one minibatch of blocks: mean next-token cross-entropy."""
    return model(input_ids=batch, attention_mask=torch.ones_like(batch), labels=batch).loss


def _pol_header(
    config: TrainConfig, tokenizer: Any, opt: torch.optim.Optimizer, total: int
) -> dict[str, Any]:
    d = opt.defaults
    return {
        "model": {"kind": "gpt2", "config": gpt2_config(config, tokenizer)},
        "loss": "causal-lm-mean",
        "optimizer": {"kind": "adamw", "betas": list(d["betas"]), "eps": d["eps"],
                      "weight_decay": d["weight_decay"], "amsgrad": d["amsgrad"]},
        "schedule": {"kind": "linear-warmup", "base_lr": config.lr,
                     "warmup_steps": config.warmup_steps, "total_steps": total},
        "batch_size": config.batch_size,
    }


def pretrained(init_from: str | Path, config: TrainConfig) -> Any:
    """A checkpoint to fine-tune, in float32 (no mixed precision is configured); its context
    must hold a block of `config.block_size`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(init_from), dtype=torch.float32)
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and config.block_size > context:
        raise ValueError(f"block_size {config.block_size} exceeds {init_from}'s context {context}")
    return model


def train_causal_lm(
    texts: Sequence[str],
    tokenizer: Any,
    config: TrainConfig,
    out_dir: str | Path,
    progress: bool = True,
    desc: str = "training",
    pol: PoLOptions | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train from scratch and save model + tokenizer to `out_dir` (a transformers directory).

    With `pol`, also write a proof-of-learning log (`harness.train.pol`); the training itself
    is the same with or without it. With `init_from` (a transformers folder or hub id;
    `tokenizer` must be its tokenizer) the checkpoint is fine-tuned instead of a fresh model
    (the size fields of `config` are unused).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import GPT2Config, GPT2LMHeadModel, get_linear_schedule_with_warmup

    set_seed(config.seed)
    t0 = time.time()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    encoded = encode_documents(texts, tokenizer)
    blocks = pack_encoded(encoded, tokenizer.eos_token_id, config.block_size)
    if init_from is not None and pol is not None:
        raise ValueError("a proof-of-learning log records a model built from its GPT-2 config; "
                         "logging the fine-tuning of a checkpoint (init_from) is not supported")
    raw_model = (GPT2LMHeadModel(GPT2Config(**gpt2_config(config, tokenizer)))
                 if init_from is None else pretrained(init_from, config))
    gen = torch.Generator().manual_seed(config.seed)
    # the loader yields block indices (same shuffle as over the blocks) so a PoL log can name them
    loader = torch.utils.data.DataLoader(
        torch.arange(len(blocks)), batch_size=config.batch_size, shuffle=True, generator=gen
    )
    raw_opt = torch.optim.AdamW(
        raw_model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    total = config.epochs * len(loader)
    sched = get_linear_schedule_with_warmup(raw_opt, config.warmup_steps, total)
    recorder = None
    if pol is not None:
        from harness.train.pol_recorder import PoLRecorder

        docs = [(t, len(e)) for t, e in zip(texts, encoded, strict=True)]
        header = _pol_header(config, tokenizer, raw_opt, total)
        recorder = PoLRecorder(pol, header, blocks, docs, tokenizer)
        recorder.checkpoint(raw_model, raw_opt)
    model, opt, loader, sched = accelerator.prepare(raw_model, raw_opt, loader, sched)
    blocks = blocks.to(accelerator.device)
    model.train()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=desc, unit="step")
    loss_value = float("nan")
    for _ in range(config.epochs):
        for idx in loader:
            lr = raw_opt.param_groups[0]["lr"]
            loss = lm_loss(model, blocks[idx])
            accelerator.backward(loss)
            opt.step()
            sched.step()
            opt.zero_grad()
            loss_value = float(loss.detach())
            if recorder is not None:
                recorder.record(lr, idx, raw_model, raw_opt)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.3f}")
    if bar is not None:
        bar.close()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if recorder is not None:
        recorder.finish(raw_model, raw_opt, str(accelerator.device))
    result = TrainResult(
        path=str(out),
        parameters=sum(p.numel() for p in unwrapped.parameters()),
        tokens_per_epoch=int(blocks.numel()),
        steps=total,
        final_loss=loss_value,
        seconds=time.time() - t0,
    )
    (out / "tdp_training.json").write_text(
        json.dumps({"config": asdict(config), "result": asdict(result)}, indent=1) + "\n"
    )
    return result
