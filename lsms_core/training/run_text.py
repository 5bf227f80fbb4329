"""The run's text side: a frozen bank of features (dataset folder), an on-demand cache (fresh data) or a
fine-tuned encoder, and the encoders validation uses.

Part of the training loop (``lsms_core.training.loop``).
"""

from __future__ import annotations

from pathlib import Path

from lsms_core.errors import ConfigError
from lsms_core.training.config import TrainConfig
from lsms_core.training.distributed import DistInfo, barrier
from lsms_core.training.text_bank import TEXT_CACHE, TextBank, TextCache, clean_text


class _TextSetup:
    """The text side of a run: a frozen bank (dataset mode), an on-demand cache (fresh data), or a
    fine-tuned encoder."""

    def __init__(self, cfg: TrainConfig, text_encoder, run_dir: Path, dist_info: DistInfo, log, device: str):
        from lsms_core.text import DEFAULT_ENCODER, read_hidden_size, resolve_encoder_path

        self.cfg, self.run_dir, self.dist_info, self.log, self.device = cfg, run_dir, dist_info, log, device
        self.source = cfg.text_encoder or DEFAULT_ENCODER
        if text_encoder is not None and text_encoder.token_length != cfg.token_length:
            raise ConfigError("token_length", f"the given text encoder pads to {text_encoder.token_length} "
                                              f"tokens, the config asks for {cfg.token_length}")
        self.dim = read_hidden_size(resolve_encoder_path(self.source))
        self.encoder = text_encoder
        self.bank = None

    def _load_encoder(self):
        from lsms_core.text import TextEncoder

        if self.encoder is None:
            self.encoder = TextEncoder.load(self.source, token_length=self.cfg.token_length)
        return self.encoder

    def prepare(self, expressions: list[str], fixed: bool) -> None:
        cfg = self.cfg
        if cfg.text_mode == "finetune":
            self._load_encoder().to(self.device)
            self.encoder.model.train().requires_grad_(True)
            return
        if not fixed:
            self.bank = TextCache(self._load_encoder())
            return
        expressions = sorted({clean_text(e) for e in expressions})
        cache_path = self.run_dir / TEXT_CACHE
        if self.dist_info.main:
            self.bank = TextBank.load(cache_path, self.source, cfg.token_length, expressions)
            if self.bank is None:
                self.log(f"encoding {len(expressions)} expressions once with the frozen text encoder")
                self.bank = TextBank.build(self._load_encoder(), expressions)
                self.bank.save(cache_path, self.source, cfg.token_length)
        barrier(self.dist_info)
        if self.bank is None:
            self.bank = TextBank.load(cache_path, self.source, cfg.token_length, expressions)

    def encode(self, texts: list[str]):
        if self.cfg.text_mode == "frozen":
            feats, tmask = self.bank.encode(texts)
            return feats.to(self.device), tmask.to(self.device)
        return _encode_trainable(self.encoder, texts, self.device)

    def for_evaluation(self):
        return self.bank if self.cfg.text_mode == "frozen" else _EvalEncoder(self.encoder)

class _AnyTextEncoder:
    """The run's encoder for words the frozen bank has never seen (the real CT's plain expressions)."""

    def __init__(self, text: _TextSetup):
        self.text = text

    def encode(self, texts):
        if self.text.cfg.text_mode == "frozen" and isinstance(self.text.bank, TextBank):
            return TextCache(self.text._load_encoder()).encode(texts)
        return self.text.for_evaluation().encode(texts)


class _EvalEncoder:
    """A fine-tuned text encoder, in eval mode, behind the encode() interface evaluation uses."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode(self, texts):
        import torch

        self.encoder.model.eval()
        with torch.no_grad():
            return _encode_trainable(self.encoder, list(texts), str(self.encoder.device))


def _encode_trainable(encoder, texts: list[str], device):
    import torch

    tokens = encoder.tokenize([clean_text(t) for t in texts])
    ids = tokens["input_ids"].to(device)
    mask = tokens["attention_mask"].to(device)
    out = encoder.model(input_ids=ids, attention_mask=mask,
                        token_type_ids=tokens.get("token_type_ids", torch.zeros_like(ids)).to(device))
    feats = (out.last_hidden_state.float() * mask[..., None]).transpose(1, 2)
    return feats, mask.long()

