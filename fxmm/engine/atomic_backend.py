"""A local file backend whose writes are atomic, for checkpoints that survive a kill.

mmengine's ``LocalBackend.put`` opens the target and writes into it, so a run killed while
saving leaves a truncated ``iter_N.pth`` (and ``last_checkpoint`` may name it). This backend
writes to a temporary file in the same folder, fsyncs it and ``os.replace``-s it over the
target: a reader sees the old file or the complete new one, never a partial one. Select it for
checkpoints with ``default_hooks.checkpoint.backend_args = dict(backend='atomic_local')``
(fxmm's default runtime does).
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from fxmm.utils.atomic_io import atomic_write_bytes


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """:class:`mmengine.fileio.LocalBackend` with atomic :meth:`put` and :meth:`put_text`."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)
