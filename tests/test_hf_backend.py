"""The hf backend: batch independence, errors, fingerprint, model specs."""

from __future__ import annotations

import numpy as np
import pytest

from harness.backends import BackendError, ModelSpecError, load_backend, parse_model_spec
from harness.backends.hf import HFBackend

TEXTS = [
    "Return the sum of two numbers.",
    "A short one.",
    "This docstring is a good deal longer than the others, so it forces padding in its batch.",
    "abacus zebra lantern",
    "x",
]


def test_logprobs_do_not_depend_on_batch_neighbours(tiny_world):
    one = HFBackend(str(tiny_world.target), batch_size=1)
    many = HFBackend(str(tiny_world.target), batch_size=8)
    alone = [one.token_logprobs([t])[0] for t in TEXTS]
    batched = many.token_logprobs(TEXTS)
    shuffled = many.token_logprobs(TEXTS[::-1])[::-1]
    for a, b, c, text in zip(alone, batched, shuffled, TEXTS):
        assert a.shape == b.shape == (len(one.tokenizer.encode(text, add_special_tokens=False)),)
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(b, c, atol=1e-5)
        assert np.all(a <= 0)


def test_logprobs_match_a_direct_forward_pass(tiny_world):
    import torch

    b = HFBackend(str(tiny_world.target))
    ids = b.encode(TEXTS[0])
    with torch.no_grad():
        logits = b.model(torch.tensor([ids])).logits[0, :-1].float()
    expected = torch.log_softmax(logits, -1)[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    np.testing.assert_allclose(b.token_logprobs([TEXTS[0]])[0], expected.numpy(), atol=1e-5)


def test_fingerprint(tiny_world):
    fp = HFBackend(str(tiny_world.target)).fingerprint()
    assert fp.backend == "hf" and fp.dtype == "float32"
    assert fp.weights_sha256 and len(fp.weights_sha256) == 64
    assert fp.tokenizer_sha256 and "transformers" in fp.versions and "torch" in fp.versions
    assert fp.digest() == HFBackend(str(tiny_world.target), batch_size=3).fingerprint().digest()
    other = HFBackend(str(tiny_world.reference)).fingerprint()
    assert other.identity_digest() != fp.identity_digest()


def test_unknown_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(BackendError, match="model directory not found"):
        load_backend(f"hf:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="no config.json"):
        load_backend(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(BackendError, match="options"):
        load_backend(f"hf:{tmp_path / 'empty'},colour=blue")


def test_tokenizer_that_drops_text_is_refused(tiny_world, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[UNK]")
    b = HFBackend(str(tiny_world.target))
    b.tokenizer = fast
    with pytest.raises(BackendError, match="unknown token"):
        b.token_logprobs(["hello strange world"])


def test_model_spec_parsing():
    s = parse_model_spec("hf:org/model@v1.2,dtype=bfloat16,batch_size=64")
    assert (s.backend, s.model, s.revision) == ("hf", "org/model", "v1.2")
    assert s.options == {"dtype": "bfloat16", "batch_size": 64}
    assert parse_model_spec("./local/dir").model == "./local/dir"
    assert parse_model_spec("/abs/path@main").revision == "main"
    with pytest.raises(ModelSpecError, match="unknown backend"):
        parse_model_spec("nope:model")
    with pytest.raises(ModelSpecError, match="key=value"):
        parse_model_spec("hf:m,dtype")
    with pytest.raises(ModelSpecError):
        parse_model_spec("")
