"""Convert an Ark checkpoint (timm Swin + projector + per-dataset heads) to an fxmm FoundationX.

    python tools/model_converters/ark_to_fxmm.py \\
        ark6_teacher_ep200_swinb_projector1376_mlp.pth.tar ark6_fxmm.pth \\
        --config configs/ark6_release.py   # --ark-datasets: the Ark-6 order by default

Ark (Ma et al., MICCAI 2023; jlianglab/Ark) is ``ArkSwinTransformer``: timm's Swin, a projector
after the pooled last stage and ``omni_heads.<i>``, one linear head per training dataset in the
order of its ``--data_set`` options. fxmm holds the same model as ``FoundationX`` with a
``MultiDatasetClsHead(projector_dims=...)``; this maps

- the Swin (see ``timm_swin_to_mmpretrain.py``; timm's final ``norm`` -> ``backbone.norm3``),
- ``projector`` -> ``cls_head.projector``: a single Linear, or the Linear-ReLU-Linear MLP of
  the ``*_mlp`` checkpoints (the released Ark-6) into a head with ``projector_mlp=True``
  (``configs/ark6_release.py``): ``projector.0`` / ``projector.2`` keep their names,
- ``omni_heads.<i>`` -> ``cls_head.heads.<ark-datasets[i]>``,

and drops timm's unused ImageNet ``head``. The result is checked against the FoundationX of
``--config`` (a TeacherStudent config's inner model): every key and shape, failing with the list
of missing / unused keys unless ``--allow-missing`` / ``--allow-unused``. The checkpoint holds
plain FoundationX keys; a TeacherStudent loads them into both copies (``load_from``).
Training checkpoints of Ark hold ``state_dict`` (student) and ``teacher``; the teacher (the
released model) is taken unless ``--key`` says otherwise, or both with ``--both-copies``
(a TeacherStudent checkpoint).
"""
import argparse
import re
from typing import Sequence, Tuple

from mmengine.config import DictAction
from torch import nn

from fxmm.apis import build_in_scope, foundation_x_cfg
from fxmm.models.teacher_student import join_copies
from fxmm.utils.launch import load_config
from fxmm.utils.state_dict_mapping import (ConversionError, KeyReport, KeyRule, StateDict,
                                           add_conversion_args, load_checkpoint_file,
                                           match_state_dict, save_converted, select_state_dict,
                                           swin_pad_small_map, timm_swin_to_mmpretrain)

# the Ark-6 training order (jlianglab/Ark README): omni_heads.0 .. omni_heads.5
ARK6_DATASETS = ('mimic_cxr', 'chexpert', 'chestxray14', 'rsna_pneumonia', 'vindr_cxr',
                 'shenzhen')
SOURCE_ENTRIES = ('teacher', 'state_dict', 'model')


def ark_head_count(state_dict: StateDict) -> int:
    """The number of ``omni_heads.<i>`` of an Ark state dict."""
    heads = {int(m.group(1)) for k in state_dict for m in [re.match(r'omni_heads\.(\d+)\.', k)]
             if m}
    return max(heads) + 1 if heads else 0


def convert_ark(state_dict: StateDict,
                ark_datasets: Sequence[str] = ARK6_DATASETS,
                backbone_only: bool = False,
                projector_mlp: bool = False):
    """Rename Ark tensors to FoundationX keys.

    Args:
        state_dict (dict[str, Tensor]): An Ark state dict (``module.`` stripped).
        ark_datasets (Sequence[str]): fxmm dataset names of ``omni_heads.0, 1, ...``.
        backbone_only (bool): Convert the Swin only; the projector and heads are dropped.
        projector_mlp (bool): Whether the target's projector is the Linear-ReLU-Linear MLP
            (``MultiDatasetClsHead(projector_mlp=True)``); it must match the source's.

    Returns:
        MappedStateDict: FoundationX-keyed tensors and the left-over source keys.
    """
    mlp = any(k.startswith('projector.0.') for k in state_dict)
    num_heads = ark_head_count(state_dict)
    if backbone_only:
        heads = [KeyRule(f'{name}.{{p*}}', None, why='Ark projector and heads (--backbone-only)')
                 for name in ('projector', 'omni_heads')]
    else:
        if mlp != projector_mlp:
            kinds = {True: 'the Linear-ReLU-Linear MLP (projector.0 / projector.2)',
                     False: 'a single Linear (projector)'}
            raise ConversionError(
                f"the Ark projector is {kinds[mlp]} but the target's is {kinds[projector_mlp]}: "
                'use a config whose cls_head has '
                f'projector_mlp={mlp} (configs/ark6_release.py for the MLP, configs/ark.py for '
                'the Linear), or pass --backbone-only')
        if num_heads != len(ark_datasets):
            raise ConversionError(
                f'the checkpoint has {num_heads} omni_heads but {len(ark_datasets)} Ark dataset '
                f'names were given ({list(ark_datasets)}): pass --ark-datasets with one fxmm '
                'dataset name per head, in the order Ark was trained on them')
        projector = 'projector.{i}.{p}' if mlp else 'projector.{p}'
        heads = [KeyRule(projector, 'cls_head.' + projector)]
        heads += [KeyRule(f'omni_heads.{i}.{{p}}', f'cls_head.heads.{name}.{{p}}')
                  for i, name in enumerate(ark_datasets)]
    heads.append(KeyRule('head.{p}', None, why="timm's ImageNet classifier (unused by Ark)"))
    return timm_swin_to_mmpretrain(state_dict, dst_prefix='backbone.', extra_rules=heads)


def convert(state_dict: StateDict,
            model_cfg: dict,
            ark_datasets: Sequence[str] = ARK6_DATASETS,
            backbone_only: bool = False) -> Tuple[StateDict, KeyReport]:
    """Convert an Ark state dict and check it against the FoundationX of ``model_cfg``.

    Args:
        state_dict (dict[str, Tensor]): The Ark tensors.
        model_cfg (dict): A ``FoundationX`` config (the target).
        ark_datasets (Sequence[str]): fxmm dataset names of the Ark heads, in head order.
        backbone_only (bool): Convert the Swin only.

    Returns:
        tuple: The FoundationX state dict (target key order) and the :class:`KeyReport`.
    """
    model = build_in_scope(model_cfg, 'fxmm')
    projector = getattr(model.cls_head, 'projector', None)
    mapped = convert_ark(state_dict, ark_datasets, backbone_only,
                         projector_mlp=isinstance(projector, nn.Sequential))
    converted, report = match_state_dict(mapped, model.state_dict())
    stage_norms = [k for k in report.missing if re.fullmatch(r'backbone\.norm\d\.(weight|bias)', k)]
    if stage_norms:
        report.notes.append(f"{sorted({k.split('.')[1] for k in stage_norms})}: timm's Swin has "
                            'a norm after the last stage only; the other stage outputs of the '
                            'fxmm backbone get new norms')
    if swin_pad_small_map(model.backbone):
        report.notes.append('the target backbone has pad_small_map=True: it shifts windows where '
                            'a stage map equals the window (stage 4 at 224 px); timm does not, so '
                            'outputs differ from Ark there (set pad_small_map=False for Ark)')
    return converted, report


def parse_args():
    parser = argparse.ArgumentParser(description='Convert an Ark checkpoint to fxmm FoundationX')
    parser.add_argument('src', help='Ark checkpoint')
    parser.add_argument('dst', help='output checkpoint (FoundationX keys)')
    parser.add_argument('--config', required=True,
                        help='fxmm config of the target model (FoundationX or TeacherStudent)')
    parser.add_argument('--ark-datasets', nargs='+', default=list(ARK6_DATASETS),
                        help='fxmm dataset names of omni_heads.0, 1, ... (default: the Ark-6 '
                        f'order {" ".join(ARK6_DATASETS)})')
    parser.add_argument('--key', default='auto',
                        help=f'checkpoint entry to convert (default: the first of '
                        f'{list(SOURCE_ENTRIES)} present, else the top level)')
    parser.add_argument('--both-copies', action='store_true',
                        help="an Ark training checkpoint's state_dict (student) and teacher "
                        'as a TeacherStudent checkpoint (default: one copy, FoundationX keys)')
    parser.add_argument('--backbone-only', action='store_true',
                        help='convert the Swin only (the projector and heads are dropped)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    add_conversion_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    model_cfg = foundation_x_cfg(load_config(args.config, cfg_options=args.cfg_options))
    checkpoint = load_checkpoint_file(args.src, trusted=args.trusted)
    # the student and the teacher of a training checkpoint, or one entry
    keys = ['state_dict', 'teacher'] if args.both_copies else [args.key]
    converted, reports = [], {}
    for key in keys:
        state_dict, entry = select_state_dict(checkpoint, key, SOURCE_ENTRIES)
        state_dict, reports[entry] = convert(state_dict, model_cfg, args.ark_datasets,
                                             args.backbone_only)
        converted.append(state_dict)
        reports[entry].log(f'{args.src} [{entry}] -> FoundationX of {args.config}')
    for report in reports.values():
        report.check(args.allow_missing, args.allow_unused)
    converted = join_copies(*converted) if args.both_copies else converted[0]
    save_converted(converted, args.dst, meta=dict(
        converter='ark_to_fxmm', source=args.src, source_entries=list(reports),
        config=args.config, ark_datasets=list(args.ark_datasets),
        backbone_only=args.backbone_only,
        missing={entry: r.missing for entry, r in reports.items()},
        notes={entry: r.notes for entry, r in reports.items()}))


if __name__ == '__main__':
    main()
