"""Train a small byte-level BPE tokenizer on a corpus and wrap it for transformers."""

from __future__ import annotations

from collections.abc import Sequence

SPECIAL = "<|endoftext|>"


def train_tokenizer(texts: Sequence[str], vocab_size: int = 2048):  # -> PreTrainedTokenizerFast
    """Byte-level BPE (GPT-2 style) with one special token used as BOS, EOS and padding."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, pad_token=SPECIAL
    )
