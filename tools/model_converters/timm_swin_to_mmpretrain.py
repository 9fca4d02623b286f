"""Convert a timm-layout Swin Transformer (the Ark backbone) to mmpretrain's SwinTransformer.

    python tools/model_converters/timm_swin_to_mmpretrain.py \\
        ark6_teacher_ep200_swinb_projector1376_mlp.pth.tar ark6_swin-b.pth

The output is an mmengine checkpoint of the backbone alone (keys without prefix), for
``backbone.init_cfg=dict(type='Pretrained', checkpoint='ark6_swin-b.pth')`` in an fxmm,
mmpretrain, mmdet or mmseg config whose backbone is ``mmpretrain.SwinTransformer``; its
``meta.backbone`` holds the matching backbone config (size read from the tensors).

The source may be a flat state dict (Ark's released teachers, timm checkpoints), an Ark training
checkpoint (``teacher`` is taken before ``state_dict``) or an official Swin release (``model``);
``module.`` prefixes are stripped. timm <= 0.6 and >= 0.9 layouts are both read. Non-backbone
modules (timm's ``head``, Ark's ``projector`` and ``omni_heads``) are dropped and listed.

The converted tensors are checked against an ``mmpretrain.SwinTransformer`` built with the
inferred size and ``--out-indices`` (default: the last stage, whose norm is timm's ``norm``):
stage norms of other out indices have no timm counterpart and need ``--allow-missing``.
"""
import argparse
from typing import Sequence, Tuple

from fxmm.apis import build_in_scope
from fxmm.utils.state_dict_mapping import (KeyReport, KeyRule, StateDict, add_conversion_args,
                                           infer_swin_arch, load_checkpoint_file,
                                           match_state_dict, save_converted, select_state_dict,
                                           timm_swin_to_mmpretrain)

# modules of timm / Ark checkpoints that are not part of the backbone
NON_BACKBONE = ('head', 'head_dist', 'projector', 'omni_heads')
SOURCE_ENTRIES = ('teacher', 'state_dict', 'model')


def convert(state_dict: StateDict,
            out_indices: Sequence[int] = (3, ),
            pad_small_map: bool = False) -> Tuple[StateDict, KeyReport, dict]:
    """Convert timm Swin tensors and check them against a matching mmpretrain Swin.

    Args:
        state_dict (dict[str, Tensor]): timm-layout tensors (``module.`` already stripped).
        out_indices (Sequence[int]): Stages the target backbone outputs (each has a norm).
            Defaults to (3, ).
        pad_small_map (bool): The target's ``pad_small_map``. False (default) reproduces
            timm: no window shift where a stage map equals the window (stage 4 at 224 px).

    Returns:
        tuple: The mmpretrain state dict, the :class:`KeyReport`, and the backbone config
        (``type='mmpretrain.SwinTransformer'``) it loads into.
    """
    drop = [KeyRule(f'{name}.{{p*}}', None, why='not part of the backbone')
            for name in NON_BACKBONE]
    mapped = timm_swin_to_mmpretrain(state_dict, extra_rules=drop)
    arch = infer_swin_arch(mapped.state_dict)
    backbone = dict(type='mmpretrain.SwinTransformer', **arch, out_indices=tuple(out_indices),
                    pad_small_map=pad_small_map)
    reference = build_in_scope(dict(backbone, type='SwinTransformer'), 'mmpretrain').state_dict()
    converted, report = match_state_dict(mapped, reference)
    return converted, report, backbone


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert a timm Swin (Ark backbone) to mmpretrain SwinTransformer keys')
    parser.add_argument('src', help='source checkpoint (timm layout)')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--key', default='auto',
                        help=f'checkpoint entry holding the weights (default: the first of '
                        f'{list(SOURCE_ENTRIES)} present, else the top level)')
    parser.add_argument('--out-indices', type=int, nargs='+', default=[3],
                        help='stages the target backbone outputs (default: 3)')
    parser.add_argument('--pad-small-map', action='store_true',
                        help="target backbone's pad_small_map (default False, as timm)")
    add_conversion_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    checkpoint = load_checkpoint_file(args.src, trusted=args.trusted)
    state_dict, entry = select_state_dict(checkpoint, args.key, SOURCE_ENTRIES)
    converted, report, backbone = convert(state_dict, args.out_indices, args.pad_small_map)
    report.log(f'{args.src} [{entry}] -> mmpretrain SwinTransformer')
    report.check(args.allow_missing, args.allow_unused)
    save_converted(converted, args.dst, meta=dict(
        converter='timm_swin_to_mmpretrain', source=args.src, source_entry=entry,
        backbone=backbone, missing=report.missing))


if __name__ == '__main__':
    main()
