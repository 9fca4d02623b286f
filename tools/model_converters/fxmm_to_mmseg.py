"""Export one dataset's segmentor of an fxmm checkpoint as a plain mmseg UperNet.

    python tools/model_converters/fxmm_to_mmseg.py configs/foundation_x.py \\
        work_dirs/foundation_x/best.pth fx_upernet_siim --dataset siim [--copy teacher]

writes ``fx_upernet_siim.pth`` and ``fx_upernet_siim.py`` (``default_scope = 'mmseg'``,
``model`` = an ``EncoderDecoder`` with the same backbone config and a ``UPerHead``,
``load_from`` the ``.pth``). fxmm's shared UperNet (``seg_neck``, mmseg's UPerHead without its
classifier) becomes ``decode_head`` and the dataset's 1x1 mask classifier its ``conv_seg``.

The logits (``EncoderDecoder.encode_decode`` / the ``seg_logits`` of predictions) equal fxmm's.
fxmm's masks are multi-label (one sigmoid per class); mmseg's post-processing turns logits
into a label map: with one class (``num_classes=2, out_channels=1``) it thresholds the sigmoid
as fxmm does; with several it takes the arg-max, so for overlapping masks apply a sigmoid to
``seg_logits`` yourself. A dataset head with a 3x3 conv before the classifier
(``MultiDatasetSegHead(mid_channels=...)``) or a 3x3 classifier (``kernel_size=3``), and the
authors' seg decoder (``PSPFPNNeck``), have no place in UPerHead and are refused.

The checkpoint must fit the config (loaded strictly into its FoundationX); the export is
checked by building the segmentor from the written config in mmseg and comparing every key
and shape.
"""
import argparse
from collections import OrderedDict
from typing import Tuple

from torch import nn

from fxmm.apis import (add_export_args, check_export, image_preprocessor_cfg,
                       load_fxmm_checkpoint, save_export)
from fxmm.utils.state_dict_mapping import ConversionError, KeyMapper, KeyRule, StateDict


def upernet_config(model: nn.Module, model_cfg: dict, dataset: str) -> dict:
    """The mmseg ``EncoderDecoder`` config of ``dataset``'s segmentor in a FoundationX.

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


def export_upernet(model: nn.Module, model_cfg: dict, dataset: str) -> Tuple[StateDict, dict]:
    """``dataset``'s segmentor of a FoundationX as an mmseg EncoderDecoder with UPerHead.

    Returns:
        tuple: The segmentor state dict (checked against the segmentor built from the config)
        and the config.
    """
    cfg = upernet_config(model, model_cfg, dataset)
    parts = ('backbone.', 'seg_neck.', f'seg_head.heads.{dataset}.')
    state_dict = OrderedDict((k, v) for k, v in model.state_dict().items() if k.startswith(parts))
    mapped = KeyMapper([
        KeyRule('backbone.{rest*}', 'backbone.{rest*}'),
        KeyRule('seg_neck.uper.{rest*}', 'decode_head.{rest*}'),
        KeyRule(f'seg_head.heads.{dataset}.0.{{p}}', 'decode_head.conv_seg.{p}'),
    ]).convert(state_dict)
    exported = check_export(mapped, cfg, 'mmseg',
                            f'FoundationX {dataset} segmentor -> mmseg UperNet')
    return exported, cfg


def parse_args():
    parser = argparse.ArgumentParser(
        description="Export one dataset's segmentor of an fxmm checkpoint as an mmseg UperNet")
    add_export_args(parser)
    parser.add_argument('--dataset', required=True, help='the dataset whose segmentor to export')
    return parser.parse_args()


def main():
    args = parse_args()
    model, model_cfg, what = load_fxmm_checkpoint(args.config, args.checkpoint, args.copy,
                                                  args.cfg_options)
    exported, cfg = export_upernet(model, model_cfg, args.dataset)
    save_export(exported, cfg, 'mmseg', args.out, meta=dict(
        converter='fxmm_to_mmseg', source=args.checkpoint, source_entry=what,
        config=args.config, dataset=args.dataset))


if __name__ == '__main__':
    main()
