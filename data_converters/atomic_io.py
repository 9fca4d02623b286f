"""Atomic file writes: a reader (or a resumed run) never sees a partial file."""
import json
from typing import Optional

from fxmm.utils.atomic_io import atomic_write_bytes


def write_bytes_atomic(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` atomically (:func:`fxmm.utils.atomic_io.atomic_write_bytes`)."""
    atomic_write_bytes(data, path)


def write_json_atomic(obj, path: str, indent: Optional[int] = None) -> None:
    """Write ``obj`` as JSON (UTF-8) atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(json.dumps(obj, indent=indent, ensure_ascii=False).encode('utf-8'), path)
