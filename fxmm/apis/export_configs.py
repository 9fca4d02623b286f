"""The plain OpenMMLab models that parts of a FoundationX are, as configs.

- :func:`dino_config`: one dataset's detector (the shared encoder side of ``SharedDINO`` and
  that dataset's branch) as an mmdet ``DINO``;
- :func:`upernet_config`: one dataset's segmentor (the shared UperNet and that dataset's mask
  classifier) as an mmseg ``EncoderDecoder`` with a ``UPerHead``;
- :func:`split_scope`: the library and bare type of a backbone config.

``tools/model_converters`` export fxmm checkpoints into these models; ``tools/benchmark.py``
builds them as the single-task references that fxmm is timed against.
"""
import copy
import inspect
from typing import Tuple

from torch import nn

from fxmm.models.detectors.shared_dino import SharedDINO
from fxmm.utils.state_dict_mapping import ConversionError

from .export import image_preprocessor_cfg

_SHARED_DINO_DEFAULTS = {name: p.default for name, p in
                         inspect.signature(SharedDINO).parameters.items()
                         if p.default is not inspect.Parameter.empty}


def split_scope(cfg: dict) -> Tuple[dict, str]:
    """``type='mmpretrain.SwinTransformer'`` -> (``type='SwinTransformer'``, ``'mmpretrain'``);
    an unscoped type stays in ``fxmm``."""
    scope, _, name = cfg['type'].rpartition('.')
    return dict(cfg, type=name), scope or 'fxmm'


def dino_config(model: nn.Module, model_cfg: dict, dataset: str) -> dict:
    """The mmdet ``DINO`` config of ``dataset``'s detector in a FoundationX.

    Args:
        model (nn.Module): The FoundationX (built from ``model_cfg``).
        model_cfg (dict): Its config.
        dataset (str): A dataset with a localisation branch.

    Returns:
        dict: The DINO config (mmdet scope).
    """
    head = model.loc_head
    if head is None:
        raise ConversionError('the model has no localisation head (loc_head)')
    branch = head.branch(dataset)
    cfg = dict(_SHARED_DINO_DEFAULTS, **copy.deepcopy(model_cfg['loc_head']))
    backbone = dict(model_cfg['backbone'], init_cfg=None, out_indices=tuple(head.in_indices))
    return dict(
        type='DINO',
        num_queries=head.num_queries,
        with_box_refine=True,
        as_two_stage=True,
        num_feature_levels=head.num_feature_levels,
        data_preprocessor=image_preprocessor_cfg(model, 'DetDataPreprocessor', 'pad_size_divisor'),
        backbone=backbone,
        # as SharedDINO builds its input projection
        neck=dict(type='ChannelMapper', in_channels=list(head.in_channels), kernel_size=1,
                  out_channels=head.embed_dims, act_cfg=None,
                  norm_cfg=dict(type='GN', num_groups=32), num_outs=head.num_feature_levels),
        encoder=head.encoder_cfg(cfg['encoder']),
        decoder=head.decoder_cfg(cfg['decoder']),
        positional_encoding=cfg['positional_encoding'],
        bbox_head=dict(cfg['bbox_head'], num_classes=branch.num_classes),
        dn_cfg=cfg['dn_cfg'],
        train_cfg=cfg['train_cfg'],
        test_cfg=cfg['test_cfg'])


def upernet_config(model: nn.Module, model_cfg: dict, dataset: str) -> dict:
    """The mmseg ``EncoderDecoder`` config of ``dataset``'s segmentor in a FoundationX.

    Refused (``ConversionError``) where mmseg's UPerHead has no place for a part: a seg neck
    other than ``SharedUperNet``, a dataset head that is not one 1x1 conv, or a head and
    neck that differ in ``align_corners``.

    Args:
        model (nn.Module): The FoundationX (built from ``model_cfg``).
        model_cfg (dict): Its config.
        dataset (str): A dataset with a segmentation head.

    Returns:
        dict: The segmentor config (mmseg scope).
    """
    if model.seg_head is None:
        raise ConversionError('the model has no segmentation head (seg_head)')
    if dataset not in model.seg_head.heads:
        raise ConversionError(f'no segmentation head for dataset {dataset!r}; the model has '
                              f'{list(model.seg_head.heads)}')
    uper = getattr(model.seg_neck, 'uper', None)
    if uper is None:
        raise ConversionError(
            f'the seg neck is a {type(model.seg_neck).__name__}, not a SharedUperNet (mmseg\'s '
            'UPerHead): it has no mmseg counterpart to export to')
    head = model.seg_head.heads[dataset]
    if len(head) != 1 or head[0].kernel_size != (1, 1):
        raise ConversionError(
            f'the {dataset} seg head is not one 1x1 conv (a 3x3 conv before it, mid_channels, '
            "or a 3x3 classifier, kernel_size): mmseg's UPerHead has no place for it, so it "
            'cannot be exported exactly')
    if model.seg_head.align_corners != uper.align_corners:
        raise ConversionError('the seg head and the shared UperNet differ in align_corners; '
                              'mmseg resizes with the decode head\'s, so the export would differ')
    num_masks = head[0].out_channels
    binary = num_masks == 1
    return dict(
        type='EncoderDecoder',
        data_preprocessor=image_preprocessor_cfg(model, 'SegDataPreProcessor', 'size_divisor'),
        backbone=dict(model_cfg['backbone'], init_cfg=None),
        decode_head=dict(
            type='UPerHead',
            in_channels=list(uper.in_channels),
            in_index=list(uper.in_index),
            channels=uper.channels,
            pool_scales=tuple(uper.psp_modules.pool_scales),
            dropout_ratio=0.,
            # one mask: mmseg's binary mode (sigmoid > threshold); K masks: K logits
            num_classes=2 if binary else num_masks,
            out_channels=num_masks,
            threshold=model.seg_head.threshold,
            norm_cfg=uper.norm_cfg,
            act_cfg=uper.act_cfg,
            align_corners=uper.align_corners,
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=binary)),
        train_cfg=dict(),
        test_cfg=dict(mode='whole'))
