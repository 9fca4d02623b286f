"""Atomic file writes: a reader (or a resumed run) never sees a partial file."""
import json
import os
from typing import Optional


def write_bytes_atomic(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``, so that
    ``path`` never holds a partial file, even when the process is killed."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(obj, path: str, indent: Optional[int] = None) -> None:
    """Write ``obj`` as JSON (UTF-8) atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(json.dumps(obj, indent=indent, ensure_ascii=False).encode('utf-8'), path)
