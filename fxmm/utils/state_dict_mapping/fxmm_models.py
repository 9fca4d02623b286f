"""The fxmm side of a conversion: build a ``FoundationX`` from an fxmm config, take one copy
of a ``TeacherStudent`` checkpoint, assemble one from two copies, and load a checkpoint strictly.
"""
import copy
import importlib
import os.path as osp
from collections import OrderedDict
from typing import Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from ..setup_env import register_all_modules
from .checkpoint_files import load_checkpoint_file, select_state_dict
from .key_rules import ConversionError, StateDict

# the two copies of fxmm's TeacherStudent, as state-dict key prefixes
COPIES = ('student', 'teacher')


def fxmm_state_dict(checkpoint: dict, which: str = 'student') -> Tuple[StateDict, str]:
    """The plain ``FoundationX`` state dict of an fxmm checkpoint.

    A ``TeacherStudent`` checkpoint (keys ``student.*``, ``teacher.*``, ``progress``) gives the
    copy named by ``which``; a plain ``FoundationX`` checkpoint is returned as it is.

    Args:
        checkpoint (dict): An mmengine checkpoint (``state_dict`` entry) or a state dict.
        which (str): ``'student'`` or ``'teacher'``. Defaults to ``'student'``.

    Returns:
        tuple: The state dict and a description of what was taken.
    """
    if which not in COPIES:
        raise ValueError(f'which must be one of {COPIES}, got {which!r}')
    state_dict, entry = select_state_dict(checkpoint, candidates=('state_dict', ))
    prefix = which + '.'
    if any(k.startswith(COPIES[0] + '.') or k.startswith(COPIES[1] + '.') for k in state_dict):
        plain = OrderedDict(
            (k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
        if not plain:
            raise ConversionError(f'the TeacherStudent checkpoint has no {which!r} copy')
        return plain, f'{entry}: the {which} of a TeacherStudent'
    return state_dict, f'{entry}: a FoundationX'


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file and merge ``--cfg-options`` into it."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def foundation_x_cfg(cfg: Config) -> dict:
    """The ``FoundationX`` config of a config file's ``model`` (the inner ``model`` of a
    ``TeacherStudent``)."""
    model = copy.deepcopy(cfg.model)
    if model.get('type') == 'TeacherStudent':
        model = model.model
    if model.get('type') != 'FoundationX':
        raise ConversionError(f"the config's model is {model.get('type')!r}; expected "
                              'FoundationX or a TeacherStudent of one')
    return model


def build_in_scope(cfg: dict, scope: str) -> nn.Module:
    """Build a model config in ``scope``'s registry (``'fxmm'``, ``'mmdet'``, ...), with its
    weights as constructed (no ``init_weights``: nothing is downloaded or read)."""
    register_all_modules(init_default_scope=False)
    registry = dict(fxmm='fxmm.registry', mmdet='mmdet.registry', mmseg='mmseg.registry',
                    mmpretrain='mmpretrain.registry')
    if scope not in registry:
        raise ValueError(f'unknown scope {scope!r}; one of {sorted(registry)}')
    models = importlib.import_module(registry[scope]).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(copy.deepcopy(cfg))


def teacher_student_state_dict(student: StateDict, teacher: StateDict) -> StateDict:
    """A ``TeacherStudent`` state dict from two ``FoundationX`` ones (training progress 0)."""
    out = OrderedDict((f'student.{k}', v) for k, v in student.items())
    out.update((f'teacher.{k}', v) for k, v in teacher.items())
    out['progress'] = torch.zeros(())
    return out


def load_fxmm_checkpoint(config: str,
                         checkpoint: str,
                         which: str = 'student',
                         cfg_options: Optional[dict] = None) -> Tuple[nn.Module, dict, str]:
    """Build the FoundationX of an fxmm config and load a checkpoint of it (strictly).

    Args:
        config (str): The fxmm config file.
        checkpoint (str): An fxmm checkpoint of that config (FoundationX or TeacherStudent).
        which (str): The copy of a TeacherStudent checkpoint. Defaults to ``'student'``.
        cfg_options (dict, optional): Overrides of the config.

    Returns:
        tuple: The model (eval mode), its ``FoundationX`` config and what was loaded.
    """
    model_cfg = foundation_x_cfg(load_config(config, cfg_options))
    state_dict, what = fxmm_state_dict(load_checkpoint_file(checkpoint), which)
    return load_fxmm_model(model_cfg, state_dict), model_cfg, what


def load_fxmm_model(model_cfg: dict, state_dict: StateDict) -> nn.Module:
    """Build the ``FoundationX`` of ``model_cfg`` and load ``state_dict`` into it strictly.

    Returns:
        nn.Module: The model in eval mode.

    Raises:
        ConversionError: If the checkpoint does not fit the config, naming the keys.
    """
    model = build_in_scope(model_cfg, 'fxmm')
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ConversionError(
            f'the checkpoint does not fit the config: {len(missing)} missing keys '
            f'{missing[:10]}, {len(unexpected)} unexpected keys {unexpected[:10]}')
    model.eval()
    return model
