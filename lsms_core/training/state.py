"""The resumable training state: weights, optimiser, scaler and counters as safetensors + JSON (no pickle).

The JSON names the weights file and is written last: it is the commit point, so an interrupted save leaves
the previous state intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lsms_core.errors import LSMSError

STATE_DIR = "state"
STATE_JSON = "state.json"


class TrainingError(LSMSError):
    """Training cannot start or continue (run folder, data, resume state)."""


def _optimizer_to_flat(opt) -> tuple[dict, dict]:
    """An optimiser state dict as (tensors for safetensors, the rest as JSON)."""
    import torch

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(opt, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_state(run_dir: Path, objective, text_model, opt, scaler, counters: dict) -> None:
    """The end-of-epoch state: a new weights file, then the JSON that names it (the commit point)."""
    from safetensors.torch import save_file

    folder = run_dir / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"objective.{k}": v.detach().cpu().contiguous() for k, v in objective.state_dict().items()}
    if text_model is not None:
        tensors.update({f"text.{k}": v.detach().cpu().contiguous() for k, v in text_model.state_dict().items()})
    optim_tensors, optim_meta = _optimizer_to_flat(opt)
    tensors.update(optim_tensors)
    weights = f"state-e{counters['epoch']:04d}.safetensors"
    tmp = folder / f".{weights}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / weights)
    meta = dict(counters, weights=weights, optimizer=optim_meta,
                scaler=scaler.state_dict() if scaler is not None else None)
    _atomic_text(folder / STATE_JSON, json.dumps(meta, indent=1))
    for old in folder.glob("state-e*.safetensors"):
        if old.name != weights:
            old.unlink(missing_ok=True)


def load_state(run_dir: Path) -> tuple[dict, dict] | None:
    from safetensors.torch import load_file

    path = run_dir / STATE_DIR / STATE_JSON
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        tensors = load_file(str(run_dir / STATE_DIR / meta["weights"]))
    except Exception as exc:
        raise TrainingError(path, f"the saved training state cannot be read ({exc})") from exc
    return meta, tensors


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
