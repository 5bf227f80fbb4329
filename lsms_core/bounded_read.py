"""Reading small files with a ceiling: a config or header is never read past a limit.

A ``config.json`` that is a link to ``/dev/zero``, a FIFO, or a multi-gigabyte file would otherwise be
read without bound (or block forever); JSON nested thousands deep raises RecursionError inside the
decoder. Both end here as the caller's error class, naming the file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from lsms_core.errors import LSMSError

MiB = 1 << 20


def _size_text(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n // 1024} KiB" if n >= 1024 else f"{n} bytes"


def read_bytes(path: str | os.PathLike, limit: int, error: type[LSMSError], what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refused when it is larger than ``limit`` bytes."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise error(path, f"{what} does not exist") from None
    except OSError as exc:
        raise error(path, f"{what} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(path, f"{what} is not a regular file (a device, FIFO or folder is never read)")
    if st.st_size > limit:
        raise error(path, f"{what} is {_size_text(st.st_size)}, more than the {_size_text(limit)} this "
                          "reader accepts")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(path, f"{what} cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:  # grew while being read
        raise error(path, f"{what} is larger than the {_size_text(limit)} this reader accepts")
    return data


def read_text(path: str | os.PathLike, limit: int, error: type[LSMSError], what: str = "file",
              encoding: str = "utf-8") -> str:
    data = read_bytes(path, limit, error, what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(path, f"{what} is not {encoding.upper()} text ({exc})") from None


def parse_json(text: str, where: object, error: type[LSMSError], what: str = "file"):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(where, f"{what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise error(where, f"{what} is JSON nested too deeply to be a real {what}") from None


def read_json(path: str | os.PathLike, limit: int, error: type[LSMSError], what: str = "file"):
    """The decoded JSON of ``path`` (at most ``limit`` bytes)."""
    return parse_json(read_text(path, limit, error, what), path, error, what)
