"""Frozen text embeddings for training: computed once per expression and kept (the encoder never trains)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lsms_core.errors import LSMSError

TEXT_CACHE = "text_cache.safetensors"


class TextBank:
    """Frozen text embeddings of every expression, computed once and kept in the run folder."""

    def __init__(self, expressions: list[str], feats, masks):
        self.index = {e: k for k, e in enumerate(expressions)}
        self.feats = feats  # (E, C, T) float16
        self.masks = masks  # (E, T) uint8

    def encode(self, texts):
        import torch

        if isinstance(texts, str):
            texts = [texts]
        try:
            ids = torch.tensor([self.index[" ".join(t.split())] for t in texts])
        except KeyError as exc:
            raise LSMSError(str(exc), "expression missing from the run's text cache") from None
        return self.feats[ids].float(), self.masks[ids].long()

    @classmethod
    def build(cls, encoder, expressions: list[str], chunk: int = 64) -> TextBank:
        import torch

        feats, masks = [], []
        for start in range(0, len(expressions), chunk):
            f, m = encoder.encode(expressions[start: start + chunk])
            feats.append(f.cpu().to(torch.float16))
            masks.append(m.cpu().to(torch.uint8))
        return cls(expressions, torch.cat(feats), torch.cat(masks))

    def save(self, path: Path, source: str, token_length: int) -> None:
        from safetensors.torch import save_file

        tmp = path.with_name(f".{path.name}.tmp")
        meta = {"expressions": json.dumps(list(self.index)), "source": source,
                "token_length": str(token_length)}
        save_file({"feats": self.feats.contiguous(), "masks": self.masks.contiguous()}, str(tmp), metadata=meta)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, source: str, token_length: int, needed: list[str]) -> TextBank | None:
        """The cached bank when it was made by the same encoder and holds every needed expression."""
        from safetensors import safe_open

        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("source") != source or meta.get("token_length") != str(token_length):
                    return None
                expressions = json.loads(meta["expressions"])
                if not set(needed) <= set(expressions):
                    return None
                return cls(expressions, f.get_tensor("feats"), f.get_tensor("masks"))
        except Exception:  # a damaged cache is rebuilt, never trusted
            return None


def clean_text(text: str) -> str:
    return " ".join(text.split())


class TextCache:
    """Frozen embeddings computed on demand, for expressions that are new every epoch (fresh data).

    Expressions repeat within and across epochs (the generator's phrases, "the hypodense lesion in the
    liver"); a bounded cache keeps the frequent ones.
    """

    def __init__(self, encoder, capacity: int = 20000):
        self.encoder = encoder
        self.capacity = capacity
        self._cache: dict[str, tuple] = {}

    def encode(self, texts):
        import torch

        from lsms_core.evaluate import encode_texts

        if isinstance(texts, str):
            texts = [texts]
        texts = [clean_text(t) for t in texts]
        missing = sorted({t for t in texts if t not in self._cache})
        if missing:
            with torch.inference_mode():
                feats, masks = encode_texts(self.encoder, missing)
            if len(self._cache) + len(missing) > self.capacity:
                self._cache.clear()
            for t, f, m in zip(missing, feats.cpu(), masks.cpu(), strict=True):
                self._cache[t] = (f.to(torch.float16), m.to(torch.uint8))
        feats = torch.stack([self._cache[t][0] for t in texts]).float()
        masks = torch.stack([self._cache[t][1] for t in texts]).long()
        return feats, masks
