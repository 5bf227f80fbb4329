"""The text encoder: offline loading, any local BERT folder by path, caching, empty and over-long words."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from lsms_core.errors import LSMSWarning, TextEncoderError
from lsms_core.text import TextEncoder, default_encoder_path


def test_default_encoder_is_minilm_384(text_encoder):
    assert text_encoder.hidden_size == 384
    feats, mask = text_encoder.encode(["the smaller low-density nodule in the right lobe"])
    assert feats.shape == (1, 384, 32)
    assert mask.shape == (1, 32)
    n = int(mask.sum())
    assert 5 < n < 32
    assert torch.count_nonzero(feats[0, :, n:]) == 0  # padded positions are clean zeros


def test_same_words_are_encoded_once(text_encoder):
    words = "a hypodense lesion in segment VII"
    before = text_encoder.cache_info()
    first = text_encoder.encode(words)
    again = text_encoder.encode("  a hypodense   lesion in segment VII ")  # same words, other spacing
    after = text_encoder.cache_info()
    assert after["misses"] == before["misses"] + 1
    assert after["hits"] == before["hits"] + 1
    assert torch.equal(first[0], again[0])


@pytest.mark.parametrize("empty", ["", "   ", "\n\t"])
def test_empty_expression_is_a_clear_error(text_encoder, empty):
    with pytest.raises(TextEncoderError, match="empty"):
        text_encoder.encode(empty)


def test_over_long_expression_is_truncated_with_a_warning(text_encoder):
    words = "the large hypodense lesion with a rim " * 20
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feats, mask = text_encoder.encode(words)
    assert any(issubclass(w.category, LSMSWarning) and "tokens" in str(w.message) for w in caught)
    assert feats.shape == (1, 384, 32) and int(mask.sum()) == 32


def _tiny_bert_folder(folder):
    """A real BERT folder of another width, saved by transformers itself (safetensors only)."""
    from transformers import BertConfig, BertModel

    source = default_encoder_path()
    folder.mkdir()
    for name in os.listdir(source):
        if name.startswith(("vocab", "tokenizer", "special_tokens")):
            shutil.copy(source / name, folder / name)
    cfg = BertConfig(vocab_size=json.loads((source / "config.json").read_text())["vocab_size"], hidden_size=64,
                     num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


def test_any_local_bert_folder_by_path_and_its_width(tmp_path):
    encoder = TextEncoder.load(_tiny_bert_folder(tmp_path / "tiny-bert"), token_length=16)
    assert encoder.hidden_size == 64
    feats, mask = encoder.encode("cyst in the left lobe")
    assert feats.shape == (1, 64, 16)


def test_folder_with_only_pickled_weights_is_refused(tmp_path):
    folder = _tiny_bert_folder(tmp_path / "pickled")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(TextEncoderError, match="model.safetensors"):
        TextEncoder.load(folder)


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(TextEncoderError, match="does not exist") as info:
        TextEncoder.load(tmp_path / "nowhere")
    assert "nowhere" in str(info.value)


def test_loads_offline_with_no_cache_and_never_touches_the_network(tmp_path):
    # A fresh process with an empty Hugging Face cache and sockets that fail loudly if anything connects.
    script = textwrap.dedent(
        """
        import socket
        def refuse(*args, **kwargs):
            raise AssertionError(f"network access attempted: {args}")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from lsms_core.text import TextEncoder
        enc = TextEncoder.load(None)
        feats, mask = enc.encode("the nodule in segment IV")
        print("OK", tuple(feats.shape))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK (1, 384, 32)" in result.stdout
    assert not any((tmp_path / "hf").rglob("*.safetensors"))
