"""The run folder's rules: what may be resumed with which settings, one trainer at a time, and a run that
never finished its first epoch.

- ``--resume`` continues only with the settings the run was started with, except those that can take
  effect from the next epoch on (:data:`CHANGEABLE_ON_RESUME`); those are applied and listed, never
  silently recorded without being used. Anything else that differs is refused, naming every key.
- A folder holding a live trainer's lock is refused (two trainers on one folder would both write its
  state); a lock left by a dead process is taken over.
- A run stopped before its first epoch ended left only the files a run writes first (config, text cache,
  validation split, logs): it is started again from scratch, with or without ``--resume``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from lsms_core.training.state import STATE_DIR, STATE_JSON, TrainingError, _atomic_text, load_state

CONFIG_NAME = "train_config.json"
LOCK = ".lock"
#: settings that can change between a run and its resumption: they only say how to compute, not what
CHANGEABLE_ON_RESUME = ("threads", "workers", "device", "progress", "time_limit_min", "val_every",
                        "val_batch_size", "real_val", "name", "out", "keep_epochs")
#: files a run writes before its first epoch ends (a folder with only these holds no training yet)
EARLY_FILES = (CONFIG_NAME, "text_cache.safetensors", "val_data", "log.csv", "log.jsonl", "curves.png", LOCK)


def check_run_dir(cfg, run_dir: Path, resume: bool, log) -> tuple[object | None, dict]:
    """(saved state or None, the settings changed on resume) for ``cfg`` in ``run_dir``."""
    from lsms_core.training.config import TrainConfig

    has_state = (run_dir / STATE_DIR / STATE_JSON).exists()
    if has_state:
        if not resume:
            raise TrainingError(run_dir, "holds a training run already; pass --resume to continue it, or "
                                         "choose another --out folder")
        try:
            saved = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TrainingError(run_dir / CONFIG_NAME, f"the run's settings cannot be read ({exc})") from exc
        defaults = TrainConfig().to_dict()
        now = cfg.to_dict()
        differ = [k for k in now if k not in CHANGEABLE_ON_RESUME and saved.get(k, defaults[k]) != now[k]]
        if differ:
            shown = "; ".join(f"{k}: {saved.get(k, defaults[k])!r} in the run, {now[k]!r} now" for k in differ)
            raise TrainingError(run_dir, f"cannot resume with different settings ({shown}); resume with the run's "
                                         f"own (see {CONFIG_NAME}) or start a new --out folder")
        changed = {k: {"run": saved.get(k, defaults[k]), "now": now[k]} for k in CHANGEABLE_ON_RESUME
                   if saved.get(k, defaults[k]) != now[k] and k != "out"}
        if changed:
            log("resuming with changed settings, applied from the next epoch: " +
                ", ".join(f"{k} {v['run']!r} -> {v['now']!r}" for k, v in changed.items()))
        return load_state(run_dir), changed
    if run_dir.exists():
        others = sorted(p.name for p in run_dir.iterdir() if p.name not in EARLY_FILES
                        and not (p.name.startswith(".") and p.name.endswith(".tmp")))
        if others:
            raise TrainingError(run_dir, f"exists and holds other files ({', '.join(others[:5])}); choose a new "
                                         "--out folder")
        if (run_dir / CONFIG_NAME).exists():
            log(f"{run_dir} holds a run that stopped before its first epoch ended: starting it again")
    return None, {}


def write_settings(cfg, run_dir: Path) -> None:
    _atomic_text(run_dir / CONFIG_NAME, json.dumps(cfg.to_dict(), indent=2) + "\n")


class RunLock:
    """``run_dir/.lock`` holding the trainer's host and pid while it trains."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK
        self.held = False

    def acquire(self) -> None:
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and _alive(holder):
                    raise TrainingError(self.path.parent, f"is being trained by process {holder['pid']} on "
                                                          f"{holder['host']}; wait for it or stop it first") from None
                self.path.unlink(missing_ok=True)  # a dead trainer's lock
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise TrainingError(self.path, "the run folder's lock cannot be taken")

    def _holder(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {"host": str(data["host"]), "pid": int(data["pid"])}
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable: a crash while writing it

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _alive(holder: dict) -> bool:
    if holder["host"] != socket.gethostname():
        return True  # another machine's trainer: it cannot be checked, so it is trusted to be alive
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_history(run_dir: Path, last_epoch: int) -> list[dict]:
    """The per-epoch log rows up to the saved state's epoch; a damaged log is an error naming its line."""
    from lsms_core.training.logs import LOG_JSONL

    path = run_dir / LOG_JSONL
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TrainingError(path, "is missing: the run's history cannot be continued") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(path, f"cannot be read ({exc})") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            epoch = int(row["epoch"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TrainingError(path, f"line {n} is not a log row ({exc}); restore it or start a new run") from exc
        if epoch <= last_epoch:
            rows.append(row)
    return rows
