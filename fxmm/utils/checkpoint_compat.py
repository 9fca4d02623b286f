"""Let torch >= 2.6 load mmengine checkpoints with its default ``weights_only=True``.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that refuses
mmengine's own checkpoints, whose ``meta`` holds the message hub (``HistoryBuffer`` objects and
numpy arrays/scalars). Instead of asking users to set ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, fxmm
adds exactly those types to torch's allow-list; anything else in a checkpoint is still refused.
"""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# numpy dtype classes pickled inside arrays/scalars (numpy 2 spells them numpy.dtypes.*)
_NUMPY_DTYPES = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                 np.uint32, np.uint64, np.float16, np.float32, np.float64)


def _numpy_globals() -> list:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *(type(np.dtype(t)) for t in _NUMPY_DTYPES)]


def allow_mmengine_checkpoints() -> None:
    """Add the types of mmengine's checkpoint ``meta`` to torch's weights-only allow-list.

    ``getattr`` is needed because numpy 2 pickles dtypes as ``getattr(numpy.dtypes, name)``;
    the unpickler still only resolves the allow-listed globals.
    """
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals([*_numpy_globals(), HistoryBuffer, getattr])
