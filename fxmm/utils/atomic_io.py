"""Atomic file writes: a reader, or a run resumed after a kill, never sees a partial file."""
import os
import os.path as osp
from pathlib import Path
from typing import Union


def atomic_write_bytes(data: bytes, filepath: Union[str, Path]) -> None:
    """Write ``data`` to ``filepath`` atomically: a temporary file beside it, fsync, rename,
    fsync of the folder (so that a crash of the machine does not lose the rename).

    The temporary file is ``.<name>.tmp``, created with the permissions the process's umask
    gives any new file (a checkpoint is as readable as a plain ``open``'s file). A write
    killed before its rename (SIGKILL leaves no time to clean up) leaves that one file,
    which the next write of ``filepath`` - a resumed run saving the same checkpoint again -
    reuses; an error that can be caught removes it.
    """
    filepath = str(filepath)
    folder = osp.dirname(osp.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    if hasattr(os, 'O_DIRECTORY'):  # POSIX: make the rename itself durable
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
