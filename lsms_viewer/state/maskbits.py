"""Masks as zlib-compressed packed bits, one record per slice: the undo history's shadow, the session
files' label blobs and the model's kept mask all use this one encoding, so none of them re-compresses
what another already holds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


def pack_bits(mask: np.ndarray) -> bytes | None:
    """A boolean array as zlib-compressed packed bits; ``None`` when it holds no True voxel."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    return zlib.compress(np.packbits(mask, axis=None).tobytes(), 1)


def unpack_bits(data: bytes | None, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pack_bits`."""
    count = int(np.prod(shape))
    if data is None:
        return np.zeros(shape, dtype=bool)
    bits = np.unpackbits(np.frombuffer(zlib.decompress(data), dtype=np.uint8), count=count)
    return bits.view(bool).reshape(shape)


def pack_volume(mask: np.ndarray) -> list[bytes | None]:
    """One :func:`pack_bits` record per slice of a (Z, Y, X) mask."""
    return [pack_bits(mask[z]) for z in range(mask.shape[0])]


def unpack_volume(slices: list[bytes | None], shape: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for z, data in enumerate(slices):
        if data is not None:
            out[z] = unpack_bits(data, shape[1:])
    return out


def nbytes_of(slices: list[bytes | None]) -> int:
    """Bytes held by per-slice records (with a small per-slice overhead)."""
    return sum(len(s) for s in slices if s is not None) + 8 * len(slices)


@dataclass(frozen=True, eq=False)
class PackedMask:
    """A (Z, Y, X) mask held as :func:`pack_volume` records: compact, and immutable, so copies of a label's
    fields (the undo history takes them) share it instead of duplicating it."""

    shape: tuple[int, int, int]
    slices: tuple[bytes | None, ...]

    @classmethod
    def of(cls, mask: np.ndarray) -> PackedMask:
        mask = np.asarray(mask, dtype=bool)
        return cls(tuple(int(s) for s in mask.shape), tuple(pack_volume(mask)))

    def unpack(self) -> np.ndarray:
        return unpack_volume(list(self.slices), self.shape)

    @property
    def nbytes(self) -> int:
        return nbytes_of(list(self.slices))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackedMask) and (self.shape, self.slices) == (other.shape, other.slices)

    def __hash__(self) -> int:
        return hash((self.shape, self.slices))

    def __deepcopy__(self, memo: dict) -> PackedMask:
        return self  # immutable

    def __repr__(self) -> str:
        return f"PackedMask(shape={self.shape}, {self.nbytes} bytes)"
