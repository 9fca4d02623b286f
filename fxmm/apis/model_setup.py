"""What :class:`~fxmm.apis.FXInferencer` takes from a config and a checkpoint: the model
config to build, the test transforms to reuse, and one copy of a ``TeacherStudent`` state dict.
"""
import copy
from collections import OrderedDict
from typing import Dict, Optional, Tuple

from mmengine.config import Config

#: the two copies a TeacherStudent checkpoint holds, as ``use`` names them
MODEL_COPIES = ('teacher', 'student')


def select_model_copy(state_dict: dict, use: Optional[str] = None) -> Tuple[dict, Optional[str]]:
    """Pick one model out of a ``TeacherStudent`` state dict.

    A ``TeacherStudent`` checkpoint holds ``student.<key>`` and ``teacher.<key>`` (plus its
    ``progress`` buffer); a ``FoundationX`` checkpoint holds ``<key>``. The chosen copy's keys
    lose their prefix, the other copy and unprefixed keys are dropped; a plain state dict is
    returned as it is.

    Args:
        state_dict (dict): The checkpoint's ``state_dict``.
        use (str, optional): ``'teacher'`` or ``'student'``; None picks the teacher if the
            checkpoint has one, else the student. Ignored for a plain state dict.

    Returns:
        tuple[dict, str | None]: The FoundationX state dict (keeping ``_metadata``) and the
        copy it came from (None for a plain state dict).

    Raises:
        ValueError: ``use`` is not a copy name, or names a copy the checkpoint lacks.
    """
    if use is not None and use not in MODEL_COPIES:
        raise ValueError(f'use must be one of {MODEL_COPIES} or None, got {use!r}')
    present = [name for name in MODEL_COPIES
               if any(key.startswith(name + '.') for key in state_dict)]
    if not present:
        return state_dict, None
    if use is None:
        use = present[0]
    elif use not in present:
        raise ValueError(f'the checkpoint has no {use} copy (its copies: {present})')
    prefix = use + '.'
    selected = OrderedDict((key[len(prefix):], value) for key, value in state_dict.items()
                           if key.startswith(prefix))
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        selected._metadata = OrderedDict(
            (key[len(prefix):] if key.startswith(prefix) else '', value)
            for key, value in metadata.items() if key.startswith(prefix) or key == use)
    return selected, use


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


def inference_model_cfg(model_cfg: dict) -> dict:
    """The FoundationX config of a model config; a TeacherStudent's inner model (built once,
    not twice), with the TeacherStudent's data preprocessor if it sets one."""
    model_cfg = copy.deepcopy(model_cfg)
    if str(model_cfg.get('type', '')).rpartition('.')[2] != 'TeacherStudent':
        return model_cfg
    inner = model_cfg['model']
    if model_cfg.get('data_preprocessor') is not None:
        inner['data_preprocessor'] = model_cfg['data_preprocessor']
    return inner
