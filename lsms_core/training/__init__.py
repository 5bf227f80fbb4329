"""Training LSMS with the paper's recipe (on the CPU, one GPU, or many with torchrun + DDP), on a dataset
folder or on fresh synthetic cases every epoch.

Defaults are the paper's: AdamW (weight decay 0.01, none on normalisation layers, biases and other 1-D
parameters), learning rate 3e-5 with polynomial decay (power 0.9) per optimiser step, batch 16, 480x480,
100 epochs, no augmentation, segmentation loss plus the vision-language contrastive loss. Every field of
:class:`TrainConfig` can be overridden from a JSON file or the command line; the resolved config is saved
in the run folder.

Run folder::

    train_config.json        the resolved configuration
    text_cache.safetensors   frozen text embeddings of a dataset's expressions (so CPU training is practical)
    val_data/                the fixed generated validation split (fresh-data runs)
    state/                   the last end-of-epoch training state (weights, optimiser, scaler, counters):
                             safetensors + JSON, never pickles; ``resume=True`` continues from it
    log.csv, log.jsonl       one row per epoch: losses, learning rate, validation metrics, throughput
    curves.png               learning curves
    best/                    the best checkpoint by validation mDice, in the engine's checkpoint format

Modules: ``config`` (TrainConfig), ``loop`` (train), ``synth_stream`` (fresh data), ``dataset`` (a dataset
folder's lines), ``objective`` (network + loss, optimiser groups, schedule), ``text_bank`` (frozen text
features), ``state`` (resumable state), ``logs``, ``card``, ``distributed``.
"""

from lsms_core.training.config import TrainConfig
from lsms_core.training.loop import TrainResult, train
from lsms_core.training.state import TrainingError

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "train"]
