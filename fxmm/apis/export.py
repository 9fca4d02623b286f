"""Exporting an fxmm model to mmpretrain / mmdet / mmseg: the data preprocessor it needs, a
strict check of the exported tensors against the target model, and the written checkpoint
and config (plus the command-line arguments every exporter shares)."""
from collections import OrderedDict
from typing import Tuple

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from torch import Tensor, nn

from fxmm.models.teacher_student import COPIES
from fxmm.utils.state_dict_mapping import (MappedStateDict, StateDict, match_state_dict,
                                           save_converted)
from .model_setup import build_in_scope


def image_preprocessor_cfg(model: nn.Module, type_name: str, divisor_key: str) -> dict:
    """An mmdet/mmseg data preprocessor config that normalises 0..255 3-channel images as
    fxmm's ``CXRDataPreprocessor`` normalises 0..1 grey ones (mean and std x 255, no channel
    swap: the channels are equal).

    Args:
        model (nn.Module): A FoundationX.
        type_name (str): ``'DetDataPreprocessor'`` or ``'SegDataPreProcessor'``.
        divisor_key (str): The preprocessor's name for the padding divisor.
    """
    pre = model.data_preprocessor
    return {'type': type_name,
            'mean': [round(float(m) * 255, 6) for m in pre.mean.flatten()],
            'std': [round(float(s) * 255, 6) for s in pre.std.flatten()],
            'bgr_to_rgb': False,
            divisor_key: pre.pad_size_divisor}


def check_export(mapped: MappedStateDict, target_cfg: dict, scope: str,
                 title: str) -> 'OrderedDict[str, Tensor]':
    """Build ``target_cfg`` in ``scope`` and check that the exported tensors fill it exactly
    (every key, every shape, nothing left over); log the report.

    Returns:
        OrderedDict: The state dict in the target's key order, loadable with ``strict=True``.
    """
    target = build_in_scope(target_cfg, scope)
    exported, report = match_state_dict(mapped, target.state_dict())
    report.log(title)
    report.check()
    return exported


def save_export(state_dict: StateDict, model_cfg: dict, scope: str, out: str,
                meta: dict) -> Tuple[str, str]:
    """Write an export as ``<out>.pth`` (mmengine checkpoint) and ``<out>.py`` (a config with
    ``default_scope`` and ``model``; ``load_from`` the checkpoint for whole detectors and
    segmentors, the backbone's ``init_cfg`` for a backbone).

    Returns:
        tuple[str, str]: The checkpoint and config paths.
    """
    ckpt, config = out + '.pth', out + '.py'
    save_converted(state_dict, ckpt, meta)
    cfg = dict(default_scope=scope, model=model_cfg)
    if 'backbone' in model_cfg:
        cfg['load_from'] = ckpt
    else:
        cfg['model'] = dict(model_cfg, init_cfg=dict(type='Pretrained', checkpoint=ckpt))
    Config(cfg).dump(config)
    print_log(f'wrote the {scope} config {config}', logger='current')
    return ckpt, config


def add_export_args(parser) -> None:
    """Add the arguments every fxmm exporter shares to an ``argparse`` parser."""
    parser.add_argument('config', help='fxmm config of the checkpoint')
    parser.add_argument('checkpoint', help='fxmm checkpoint')
    parser.add_argument('out', help='output path without extension: writes OUT.pth and OUT.py')
    parser.add_argument('--copy', default='student', choices=COPIES,
                        help='the copy of a TeacherStudent checkpoint to export (default: the '
                        'student)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
