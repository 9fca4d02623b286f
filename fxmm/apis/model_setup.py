"""Building an fxmm model from a config and loading a checkpoint into it, for inference
(:class:`~fxmm.apis.FXInferencer`) and for the checkpoint tools of ``tools/model_converters/``:
the ``FoundationX`` of a config, a model built in any OpenMMLab scope, one copy of a
checkpoint, and the test transforms a config uses.
"""
import copy
import importlib
from typing import Dict, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

from fxmm.models.teacher_student import inner_model_cfg, select_copy
from fxmm.utils.launch import load_config
from fxmm.utils.setup_env import register_all_modules
from fxmm.utils.state_dict_mapping import (ConversionError, StateDict, load_checkpoint_file,
                                           select_state_dict)

# the registry module of each scope a model can be built in
SCOPE_REGISTRIES = dict(fxmm='fxmm.registry', mmdet='mmdet.registry', mmseg='mmseg.registry',
                        mmpretrain='mmpretrain.registry')


def find_test_transforms(cfg: Config) -> Dict[str, dict]:
    """The ``LoadCXRImage`` and ``CXRResize`` configs of a config's test pipeline.

    Looked up in ``cfg.test_pipeline``, then in every ``pipeline`` under
    ``cfg.test_dataloader`` (e.g. each pair of a ``MultiTaskDataset``); the first of each
    type wins.

    Args:
        cfg (Config): A training/test config.

    Returns:
        dict[str, dict]: Type name (without scope) -> a copy of its config, for the types
        found.
    """
    pipelines = [cfg.get('test_pipeline') or []]

    def collect(node):
        if isinstance(node, dict):
            if isinstance(node.get('pipeline'), (list, tuple)):
                pipelines.append(node['pipeline'])
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)

    collect(cfg.get('test_dataloader'))
    found = {}
    for pipeline in pipelines:
        for transform in pipeline:
            name = str(transform.get('type', '')).rpartition('.')[2]
            if name in ('LoadCXRImage', 'CXRResize') and name not in found:
                found[name] = copy.deepcopy(dict(transform))
    return found


def foundation_x_cfg(cfg: Config) -> dict:
    """The ``FoundationX`` config of a config file's ``model`` (the inner ``model`` of a
    ``TeacherStudent``, see :func:`~fxmm.models.teacher_student.inner_model_cfg`).

    Raises:
        ConversionError: the model is neither a FoundationX nor a TeacherStudent of one.
    """
    model = inner_model_cfg(cfg.model)
    if str(model.get('type', '')).rpartition('.')[2] != 'FoundationX':
        raise ConversionError(f"the config's model is {model.get('type')!r}; expected "
                              'FoundationX or a TeacherStudent of one')
    return model


def build_in_scope(cfg: dict, scope: str) -> nn.Module:
    """Build a model config in ``scope``'s registry (``'fxmm'``, ``'mmdet'``, ...), with its
    weights as constructed (no ``init_weights``: nothing is downloaded or read)."""
    register_all_modules(init_default_scope=False)
    if scope not in SCOPE_REGISTRIES:
        raise ValueError(f'unknown scope {scope!r}; one of {sorted(SCOPE_REGISTRIES)}')
    models = importlib.import_module(SCOPE_REGISTRIES[scope]).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(copy.deepcopy(cfg))


def fxmm_state_dict(checkpoint: dict,
                    copy_name: Optional[str] = None) -> Tuple[StateDict, str]:
    """The plain ``FoundationX`` state dict of an fxmm checkpoint: the copy
    :func:`~fxmm.models.teacher_student.select_copy` picks from a ``TeacherStudent`` one, a
    ``FoundationX`` one as it is.

    Args:
        checkpoint (dict): An mmengine checkpoint (``state_dict`` entry) or a state dict.
        copy_name (str, optional): ``'student'`` or ``'teacher'``; None: the teacher.

    Returns:
        tuple: The state dict and a description of what was taken.
    """
    state_dict, entry = select_state_dict(checkpoint, candidates=('state_dict', ))
    state_dict, taken = select_copy(state_dict, copy_name)
    if taken is None:
        return state_dict, f'{entry}: a FoundationX'
    return state_dict, f'{entry}: the {taken} of a TeacherStudent'


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


def load_fxmm_checkpoint(config: str,
                         checkpoint: str,
                         copy_name: Optional[str] = None,
                         cfg_options: Optional[dict] = None) -> Tuple[nn.Module, dict, str]:
    """Build the FoundationX of an fxmm config and load a checkpoint of it (strictly).

    Args:
        config (str): The fxmm config file.
        checkpoint (str): An fxmm checkpoint of that config (FoundationX or TeacherStudent).
        copy_name (str, optional): The copy of a TeacherStudent checkpoint; None: the teacher.
        cfg_options (dict, optional): Overrides of the config.

    Returns:
        tuple: The model (eval mode), its ``FoundationX`` config and what was loaded.
    """
    model_cfg = foundation_x_cfg(load_config(config, cfg_options=cfg_options))
    state_dict, what = fxmm_state_dict(load_checkpoint_file(checkpoint), copy_name)
    return load_fxmm_model(model_cfg, state_dict), model_cfg, what
