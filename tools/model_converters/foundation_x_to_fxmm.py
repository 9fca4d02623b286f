"""Convert the authors' Foundation X checkpoint (jlianglab/Foundation_X) to fxmm.

    python tools/model_converters/foundation_x_to_fxmm.py FoundationX_ckpt.pth fx_fxmm.pth \\
        --config configs/foundation_x.py --trusted --allow-missing --allow-unused

The authors' checkpoint holds ``model`` (student) and ``teacher_model`` state dicts of one
IDEA-Research DINO model whose ``backbone.0`` is a Swin carrying the classification and
segmentation parts too. What maps, read from their code (``models/dino/
swin_transformer_CyclicSegmentation.py``, ``dino.py``, ``deformable_transformer_*.py``):

- Swin ``backbone.0.layers...`` (the official detection Swin, timm <= 0.6 key layout) ->
  ``backbone.stages...``; their cls path normalises stage 4 with ``norm``, the loc path stages
  1-3 with ``Locnorm1..3``; fxmm has one norm per stage: ``norm<i>`` <- ``Locnorm<i>``
  (i < 3) and ``norm3`` <- ``norm`` (``--norm3-from Locnorm3`` for the loc path instead);
  ``Segnorm*`` (never applied) and the unused ``head`` are dropped.
- ``backbone.0.classification_heads.<k>`` -> ``cls_head.heads.<cls-datasets[k]>``.
- DINO: ``input_proj`` -> ``loc_head.neck`` (mmdet ChannelMapper; the conv biases have no
  place there and are dropped - exact only if they are zero), ``transformer.level_embed`` and
  ``transformer.encoder`` -> the shared encoder, and per decoder ``k`` (the multi-decoder layout
  ``transformer.decoder.<k>``, or IDEA's single decoder) -> ``loc_head.branches.<loc-datasets
  [k]>``: decoder layers (IDEA ``norm2/norm1/norm3`` = mmdet ``norms.0/1/2``), ``class_embed`` /
  ``bbox_embed`` -> ``bbox_head.cls/reg_branches.<i>``, ``transformer.enc_out_*`` -> the
  encoder-side branch ``<num_layers>``, and the shared ``transformer.tgt_embed``,
  ``enc_output(_norm)`` and ``label_enc`` (first num_classes rows) copied into each branch.
- Not converted (listed as unused): the segmentation decoder ``segmentation_PPN/FPN`` and
  ``segmentation_heads``: a PSP module with bins 1-2-4-6 and a full-width bottleneck, a
  non-cascaded FPN without norms and 3x3 heads, a different network from mmseg's UPerHead
  (fxmm's SharedUperNet) and 1x1 MultiDatasetSegHead.

Each copy is checked against the FoundationX of ``--config``; ``--copies both`` writes a
TeacherStudent checkpoint (``student.*``, ``teacher.*``), ``student``/``teacher`` plain FoundationX
keys. The key names are inferred from the authors' code, not from a released checkpoint: the
report lists whatever did not match.
"""
import argparse
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import DictAction

from fxmm.utils.state_dict_mapping import (COPIES, ConversionError, KeyReport, KeyRule,
                                           MappedStateDict, StateDict, add_conversion_args,
                                           build_in_scope, foundation_x_cfg,
                                           load_checkpoint_file, load_config, match_state_dict,
                                           save_converted, select_state_dict, swin_pad_small_map,
                                           teacher_student_state_dict, timm_swin_to_mmpretrain)
from fxmm.utils.state_dict_mapping.idea_dino import DinoLayout, dino_rules

# classification_heads.0..10 of the authors' Swin, in their order
FX_CLS_DATASETS = ('tbx11k', 'node21', 'candid_ptx', 'rsna_pneumonia', 'chestx_det', 'siim',
                   'chexpert', 'chestxray14', 'vindr_cxr', 'shenzhen', 'mimic_cxr')
# their localisation datasets in the same order (decoder k of a multi-decoder checkpoint)
FX_LOC_DATASETS = ('tbx11k', 'node21', 'candid_ptx', 'rsna_pneumonia', 'chestx_det', 'siim')
# the checkpoint entry of each copy
SOURCE_ENTRIES = dict(student='model', teacher='teacher_model')
SWIN = 'backbone.0.'
NORM3_SOURCES = ('norm', 'Locnorm3')
SEG_NOTE = ("the authors' segmentation decoder (segmentation_PPN/FPN/heads) is not converted: "
            "it is a different network from mmseg's UPerHead (fxmm's SharedUperNet)")


def fx_head_rules(cls_datasets: Sequence[str], norm3_from: str) -> List[KeyRule]:
    """Rules for the authors' Swin norms and classification heads (the Swin blocks themselves
    are :func:`~fxmm.utils.state_dict_mapping.swin_rules`)."""
    other = NORM3_SOURCES[1 - NORM3_SOURCES.index(norm3_from)]
    rules = [KeyRule(f'{SWIN}Locnorm{i}.{{p}}', f'backbone.norm{i}.{{p}}') for i in range(3)]
    rules += [
        KeyRule(f'{SWIN}{other}.{{p}}', None,
                why=f'{other}: fxmm has one stage-4 norm, taken from {norm3_from} '
                '(--norm3-from)'),
        KeyRule(SWIN + 'Segnorm{i}.{p}', None, why="norms the authors' forward never applies"),
        KeyRule(SWIN + 'head.{p}', None, why="the authors' unused single classifier"),
    ]
    rules += [KeyRule(f'{SWIN}classification_heads.{k}.{{p}}', f'cls_head.heads.{name}.{{p}}')
              for k, name in enumerate(cls_datasets)]
    return rules


def convert_foundation_x(state_dict: StateDict,
                         cls_datasets: Sequence[str] = FX_CLS_DATASETS,
                         loc_classes: Optional[Dict[str, Optional[int]]] = None,
                         num_in_levels: int = 3,
                         norm3_from: str = 'norm') -> MappedStateDict:
    """Rename one copy of the authors' Foundation X model to FoundationX keys.

    Args:
        state_dict (dict[str, Tensor]): The authors' tensors (``module.`` stripped).
        cls_datasets (Sequence[str]): fxmm names of ``classification_heads.0, 1, ...``.
        loc_classes (dict[str, int | None], optional): fxmm name of DINO decoder ``k`` (in
            order) -> its number of box classes (None: not a dataset of the target); None or
            {} leaves the DINO unconverted.
        num_in_levels (int): Backbone levels of the target's DINO neck. Defaults to 3.
        norm3_from (str): ``'norm'`` (cls path, default) or ``'Locnorm3'`` (loc path).

    Returns:
        MappedStateDict: FoundationX-keyed tensors and the left-over keys.
    """
    if norm3_from not in NORM3_SOURCES:
        raise ValueError(f'norm3_from must be one of {NORM3_SOURCES}, got {norm3_from!r}')
    if not any(k.startswith(SWIN + 'layers.') for k in state_dict):
        raise ConversionError(f'no {SWIN}layers.* keys: not a Foundation X checkpoint of the '
                              "authors' code")
    rules = fx_head_rules(cls_datasets, norm3_from)
    if loc_classes:
        rules += dino_rules(DinoLayout.read(state_dict), loc_classes, num_in_levels)
    return timm_swin_to_mmpretrain(state_dict, SWIN, 'backbone.', norm3_from, rules)


def exactness_notes(state_dict: StateDict, model, norm3_from: str) -> List[str]:
    """Where the converted model will not compute what the authors' model did, and why."""
    notes = []
    biases = [v for k, v in state_dict.items() if re.fullmatch(r'input_proj\.\d+\.0\.bias', k)]
    if biases and max(float(b.abs().max()) for b in biases) > 0:
        notes.append('localisation is approximate: the non-zero input_proj conv biases (max '
                     f'{max(float(b.abs().max()) for b in biases):.3g}) have no place in mmdet\'s '
                     'ChannelMapper')
    norm, locnorm = (state_dict.get(f'{SWIN}{n}.weight') for n in NORM3_SOURCES)
    if norm is not None and locnorm is not None and not torch.equal(norm, locnorm):
        path = 'localisation' if norm3_from == 'norm' else 'classification'
        notes.append(f'{path} is approximate: its stage-4 norm is {norm3_from} (fxmm has one '
                     'norm per stage)')
    if swin_pad_small_map(model.backbone) is False:
        notes.append("the authors' Swin shifts windows even where a stage map equals the window "
                     '(stage 4 at 224 px); the target has pad_small_map=False and does not: set '
                     'backbone.pad_small_map=True for their outputs')
    if any(k.startswith(SWIN + 'segmentation_') for k in state_dict):
        notes.append(SEG_NOTE)
    return notes


def convert(checkpoint: dict,
            model_cfg: dict,
            copies: str = 'both',
            cls_datasets: Sequence[str] = FX_CLS_DATASETS,
            loc_datasets: Sequence[str] = FX_LOC_DATASETS,
            norm3_from: str = 'norm') -> Tuple[StateDict, Dict[str, KeyReport]]:
    """Convert the copies of an authors' checkpoint and check each against the FoundationX of
    ``model_cfg``.

    Args:
        checkpoint (dict): The loaded checkpoint (``model`` / ``teacher_model`` entries).
        model_cfg (dict): A ``FoundationX`` config (the target).
        copies (str): ``'both'`` (a TeacherStudent state dict), ``'student'`` or ``'teacher'``
            (a FoundationX state dict). Defaults to ``'both'``.
        cls_datasets (Sequence[str]): fxmm names of the classification heads, in order.
        loc_datasets (Sequence[str]): fxmm names of the DINO decoders, in order (ignored when
            the target has no localisation head).
        norm3_from (str): See :func:`convert_foundation_x`.

    Returns:
        tuple: The state dict and the :class:`KeyReport` of each converted copy.
    """
    names = list(COPIES) if copies == 'both' else [copies]
    if not set(names) <= set(COPIES):
        raise ValueError(f"copies must be 'both' or one of {COPIES}, got {copies!r}")
    model = build_in_scope(model_cfg, 'fxmm')
    reference = model.state_dict()
    loc_classes, num_in_levels = {}, 0
    if model.loc_head is not None:
        num_in_levels = len(model.loc_head.in_indices)
        branches = model.loc_head.branches
        loc_classes = {name: branches[name].num_classes if name in branches else None
                       for name in loc_datasets}
    converted, reports = {}, {}
    for name in names:
        state_dict, _ = select_state_dict(checkpoint, SOURCE_ENTRIES[name])
        mapped = convert_foundation_x(state_dict, cls_datasets, loc_classes, num_in_levels,
                                      norm3_from)
        converted[name], reports[name] = match_state_dict(mapped, reference)
        reports[name].notes += exactness_notes(state_dict, model, norm3_from)
    if copies == 'both':
        return teacher_student_state_dict(converted['student'], converted['teacher']), reports
    return converted[copies], reports


def parse_args():
    parser = argparse.ArgumentParser(
        description="Convert the authors' Foundation X checkpoint to fxmm")
    parser.add_argument('src', help="the authors' checkpoint (model / teacher_model entries)")
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', required=True,
                        help='fxmm config of the target model (FoundationX or TeacherStudent)')
    parser.add_argument('--copies', default='both', choices=['both', *COPIES],
                        help='both: a TeacherStudent checkpoint (default); student / teacher: '
                        'that copy as FoundationX keys')
    parser.add_argument('--cls-datasets', nargs='+', default=list(FX_CLS_DATASETS),
                        help='fxmm names of classification_heads.0, 1, ... (default: the '
                        "authors' order)")
    parser.add_argument('--loc-datasets', nargs='+', default=list(FX_LOC_DATASETS),
                        help='fxmm names of the DINO decoders 0, 1, ... (default: '
                        f'{" ".join(FX_LOC_DATASETS)})')
    parser.add_argument('--norm3-from', default='norm', choices=NORM3_SOURCES,
                        help='the stage-4 norm: norm (cls path exact, default) or Locnorm3 '
                        '(loc path)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    add_conversion_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    model_cfg = foundation_x_cfg(load_config(args.config, args.cfg_options))
    checkpoint = load_checkpoint_file(args.src, trusted=args.trusted)
    converted, reports = convert(checkpoint, model_cfg, args.copies, args.cls_datasets,
                                 args.loc_datasets, args.norm3_from)
    for name, report in reports.items():
        report.log(f'{args.src} [{SOURCE_ENTRIES[name]}] -> FoundationX {name} of {args.config}')
    for report in reports.values():
        report.check(args.allow_missing, args.allow_unused)
    save_converted(converted, args.dst, meta=dict(
        converter='foundation_x_to_fxmm', source=args.src, config=args.config,
        copies=args.copies, cls_datasets=list(args.cls_datasets),
        loc_datasets=list(args.loc_datasets), norm3_from=args.norm3_from,
        missing={name: r.missing for name, r in reports.items()},
        notes={name: r.notes for name, r in reports.items()}))


if __name__ == '__main__':
    main()
