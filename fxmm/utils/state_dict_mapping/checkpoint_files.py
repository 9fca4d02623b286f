"""Reading the checkpoint a converter converts and writing the one it produces (plus the
command-line options every converter shares)."""
import os
import os.path as osp
import pickle
import re
from collections import OrderedDict
from typing import Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor

from ..checkpoint_compat import allow_mmengine_checkpoints
from .key_rules import ConversionError, StateDict


def load_checkpoint_file(path: str, trusted: bool = False) -> dict:
    """Load a checkpoint on the CPU, refusing arbitrary Python objects unless ``trusted``.

    mmengine checkpoints (fxmm's own) load with torch's ``weights_only=True`` through
    :func:`~fxmm.utils.checkpoint_compat.allow_mmengine_checkpoints`. Research checkpoints
    often pickle more (``argparse.Namespace``, numpy scalars): they need ``trusted=True``.

    Args:
        path (str): The checkpoint file.
        trusted (bool): Load with ``weights_only=False`` (runs the file's pickled code: only
            for files you trust). Defaults to False.

    Returns:
        dict: The loaded object.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    allow_mmengine_checkpoints()
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=not trusted)
    except pickle.UnpicklingError as err:
        found = re.search(r'Unsupported global: GLOBAL ([\w.]+)', str(err))
        reason = f'e.g. {found.group(1)}' if found else 'refused by weights_only loading'
        raise ConversionError(
            f'{path}: holds Python objects beyond tensors ({reason}). If you trust the file, '
            'pass --trusted to load it with weights_only=False') from err
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'{path}: expected a dict (a state dict or a checkpoint holding '
                              f'one), got {type(checkpoint).__name__}')
    return checkpoint


def select_state_dict(checkpoint: dict,
                      key: str = 'auto',
                      candidates: Sequence[str] = ('state_dict', 'model')) -> Tuple[StateDict, str]:
    """Pick the state dict out of a checkpoint and strip DataParallel's ``module.`` prefix.

    Args:
        checkpoint (dict): A loaded checkpoint: a flat state dict, or a dict holding one.
        key (str): The entry to take; ``'auto'`` takes the first of ``candidates`` present,
            else the checkpoint itself if all its values are tensors. Defaults to ``'auto'``.
        candidates (Sequence[str]): Entries tried in order by ``'auto'``.

    Returns:
        tuple: The state dict (values tensors, ``module.`` stripped) and the entry used
        (``'<top level>'`` for a flat checkpoint).
    """
    entries = sorted(k for k in checkpoint if isinstance(k, str))
    if key != 'auto':
        if key not in checkpoint:
            raise ConversionError(f'the checkpoint has no {key!r} entry; its entries: {entries}')
        state_dict, used = checkpoint[key], key
    else:
        found = [c for c in candidates if isinstance(checkpoint.get(c), dict)]
        if found:
            state_dict, used = checkpoint[found[0]], found[0]
        elif checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            state_dict, used = checkpoint, '<top level>'
        else:
            raise ConversionError(f'found no state dict: none of the entries {list(candidates)}, '
                                  f'and the top level is not one (entries: {entries[:20]})')
    if not isinstance(state_dict, dict):
        raise ConversionError(f'checkpoint entry {used!r} is a {type(state_dict).__name__}, '
                              'not a state dict')
    bad = [k for k, v in state_dict.items() if not isinstance(v, Tensor)]
    if bad:
        raise ConversionError(f'checkpoint entry {used!r} holds non-tensor values, e.g. {bad[:5]}')
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                       for k, v in state_dict.items()), used


def save_converted(state_dict: StateDict, path: str, meta: dict) -> None:
    """Save ``{'meta': meta, 'state_dict': state_dict}``, an mmengine checkpoint that
    ``load_from`` / ``init_cfg=dict(type='Pretrained', ...)`` read, loadable with torch's
    ``weights_only=True``.

    Args:
        state_dict (dict[str, Tensor]): The converted tensors.
        path (str): Output file; its folder is created.
        meta (dict): Plain data (str, numbers, lists, dicts): what was converted, how.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    state = OrderedDict((k, v.detach().clone().contiguous()) for k, v in state_dict.items())
    torch.save(dict(meta=meta, state_dict=state), path)
    print_log(f'saved {len(state)} tensors to {path}', logger='current')


def add_conversion_args(parser) -> None:
    """Add the options every converter shares to an ``argparse`` parser."""
    parser.add_argument('--trusted', action='store_true',
                        help='load the source with weights_only=False (needed by checkpoints '
                        'that pickle Python objects; only for files you trust)')
    parser.add_argument('--allow-missing', action='store_true',
                        help='accept target keys the source cannot fill (they keep their '
                        'initialisation); without it such a conversion fails')
    parser.add_argument('--allow-unused', action='store_true',
                        help='accept source keys that have no place in the target (they are '
                        'dropped); without it such a conversion fails')
