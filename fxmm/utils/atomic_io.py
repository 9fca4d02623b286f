"""Atomic file writes: a reader, or a run resumed after a kill, never sees a partial file.

The one place fxmm, its tools and its converters write files that must never be seen half
written: checkpoints (through :class:`AtomicLocalBackend`), results tables, predictions,
converted images and annotation files.
"""
import json
import os
import os.path as osp
from pathlib import Path
from typing import Optional, Union

from mmengine.fileio import LocalBackend, register_backend


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


def atomic_write_json(obj, filepath: Union[str, Path], indent: Optional[int] = None) -> None:
    """Write ``obj`` as JSON (UTF-8, non-ASCII kept) atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(json.dumps(obj, indent=indent, ensure_ascii=False).encode('utf-8'),
                       filepath)


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """:class:`mmengine.fileio.LocalBackend` whose :meth:`put` and :meth:`put_text` write
    atomically, for checkpoints that survive a kill.

    mmengine's ``LocalBackend.put`` opens the target and writes into it, so a run killed while
    saving leaves a truncated ``iter_N.pth`` (and ``last_checkpoint`` may name it); this one
    writes through :func:`atomic_write_bytes`. Select it for checkpoints with
    ``default_hooks.checkpoint.backend_args = dict(backend='atomic_local')`` (fxmm's default
    runtime does).
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)
