"""The run's data: training batches from a dataset folder or from fresh synthetic cases (seeded per epoch),
the fixed synthetic validation split written into the run folder, and the optional real CT.

Part of the training loop (``lsms_core.training.loop``).
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from pathlib import Path

from lsms_core.errors import ConfigError, DatasetError
from lsms_core.training.config import TrainConfig
from lsms_core.training.distributed import DistInfo

VAL_DATA = "val_data"


def _mix(*values: int) -> int:
    return zlib.crc32(",".join(str(v) for v in values).encode())

def _data_summary(dataset) -> dict:
    splits = {}
    for name in ("train", "val", "test"):
        s = dataset.split(name)
        splits[name] = {"lines": len(s), "cases": len({x.case_id for x in s}),
                        "expressions": sum(len(x.expressions) for x in s)}
    info = {k: dataset.info.get(k) for k in ("name", "description", "license", "created_by")
            if dataset.info.get(k)}
    return {"root": str(dataset.root), **info, "splits": splits}


def _synthetic_validation(cfg: TrainConfig, run_dir: Path, log):
    """The run's fixed generated validation split (written once, reused on resume)."""
    from lsms_core.data.format import read_dataset
    from lsms_core.data.synth_dataset import write_synth_dataset

    folder = run_dir / VAL_DATA
    if not (folder / "manifest.jsonl").is_file():
        log(f"generating the fixed validation split: {cfg.synth_val_cases} synthetic cases")
        tmp = Path(tempfile.mkdtemp(prefix=".val_data.", dir=run_dir))
        shutil.rmtree(tmp)
        # A seed no training epoch draws from: training cases come from (synth_seed, epoch >= 1, index).
        write_synth_dataset(tmp, cases=cfg.synth_val_cases, seed=_mix(cfg.synth_seed, "validation") % 100000,
                            size=cfg.synth_size, slices_per_case=cfg.synth_slices, volumes=False)
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return read_dataset(folder)


def _real_validation(cfg: TrainConfig):
    if not cfg.real_val:
        return None
    from lsms_core.data.ircad import lesion_dataset, read_ircad

    return lesion_dataset(read_ircad(cfg.real_val), every=2).dataset


def _synthetic_stream(cfg: TrainConfig, dist_info: DistInfo):
    """(the epochs' batches, with set_epoch; about how many batches an epoch has; a summary for the card)."""
    from lsms_core.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from lsms_core.training.synth_stream import SynthEpochs

    if dist_info.enabled:
        raise ConfigError("synth", "fresh synthetic data is generated per process; use a dataset folder "
                                   "(lsms data synth) for multi-process training")
    stream = SynthEpochs(cases=cfg.synth, seed=cfg.synth_seed, size=cfg.synth_size, slices=cfg.synth_slices,
                         input_size=cfg.input_size, window=cfg.network_window(), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         crop=cfg.crop, batch_size=cfg.batch_size, lesions_per_slice=cfg.lesions_per_slice,
                         unmatched_fraction=cfg.unmatched_fraction, empty_text_fraction=cfg.empty_text_fraction,
                         patch=cfg.train_patch, appearance=cfg.appearance)
    summary = {"synthetic": True, "generator": "lsms_core.data.synth", "cases_per_epoch": cfg.synth,
               "seed": cfg.synth_seed, "render_size": cfg.synth_size, "slices_per_case": cfg.synth_slices}
    if cfg.train_patch:
        summary["train_patch"] = cfg.train_patch
    if cfg.appearance:
        summary["appearance"] = cfg.appearance
    return stream, stream.approx_batches(), summary


def _dataset_loader(cfg: TrainConfig, dataset, dist_info: DistInfo):
    import torch  # noqa: F401
    from torch.utils.data import DataLoader, DistributedSampler

    from lsms_core.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from lsms_core.training.dataset import TrainSet, collate_lines

    samples = dataset.split(cfg.train_split)
    if not samples:
        raise DatasetError(cfg.data, f"split {cfg.train_split!r} holds no lines to train on")
    train_set = TrainSet(dataset, samples, cfg.input_size, cfg.network_window(), IMAGENET_MEAN, IMAGENET_STD, cfg.seed,
                         crop=cfg.crop, cache=cfg.cache_images)
    sampler = DistributedSampler(train_set, num_replicas=dist_info.world, rank=dist_info.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=False)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                        drop_last=False, persistent_workers=False, collate_fn=collate_lines)

    class Epochs:
        def set_epoch(self, epoch: int) -> None:
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)

        def __iter__(self):
            return iter(loader)

    return Epochs(), len(loader), samples

