"""Device choice: ``auto`` = CUDA, then Apple MPS, then CPU; an explicit choice is honoured or refused."""

from __future__ import annotations

from lsms_core.errors import LSMSError


class DeviceError(LSMSError):
    """The requested compute device is not available."""


def resolve_device(choice: str = "auto") -> str:
    import torch

    choice = (choice or "auto").lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(choice, "CUDA is not available on this machine (use --device cpu or auto)")
        if ":" in choice and int(choice.split(":", 1)[1]) >= torch.cuda.device_count():
            raise DeviceError(choice, f"only {torch.cuda.device_count()} CUDA device(s) present")
        return choice
    if choice == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(choice, "Apple MPS is not available on this machine")
        return choice
    if choice == "cpu":
        return choice
    raise DeviceError(choice, "unknown device; use auto, cpu, cuda, cuda:N or mps")


def set_cpu_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))
