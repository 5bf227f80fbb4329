"""One exception hierarchy for the whole core: every message names the file (or input) and the reason.

The CLI turns these into a single ``error: <what>: <why>`` line; the GUI turns them into a dialog.
"""

from __future__ import annotations


class LSMSError(Exception):
    """Base of every error the project raises on purpose.

    ``what`` is the thing that failed (a file path, an option, an expression), ``why`` the reason.
    """

    def __init__(self, what: object, why: str):
        self.what = str(what)
        self.why = why
        super().__init__(f"{self.what}: {why}")


class CheckpointError(LSMSError):
    """A checkpoint folder is missing, malformed, or does not match its config."""


class TextEncoderError(LSMSError):
    """The text encoder cannot be loaded, or an expression cannot be encoded."""


class ConfigError(LSMSError):
    """A model or training configuration is invalid."""


class VolumeError(LSMSError):
    """A CT volume or mask cannot be read or written honestly."""


class DatasetError(LSMSError):
    """A dataset (see shared/docs/dataset-format.md) is invalid."""


class Cancelled(LSMSError):
    """A long operation was cancelled by its caller."""

    def __init__(self, what: object = "operation", why: str = "cancelled by the user"):
        super().__init__(what, why)


class LSMSWarning(UserWarning):
    """Something was done that the user should know about (truncation, fallback, dropped slice)."""
