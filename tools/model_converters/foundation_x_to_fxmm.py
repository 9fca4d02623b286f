"""Convert the authors' Foundation X checkpoint (jlianglab/Foundation_X) to fxmm.

    python tools/model_converters/foundation_x_to_fxmm.py FoundationX.pth fx_release.pth \\
        --config configs/foundation_x_release.py

The authors' checkpoint holds ``model`` (student) and ``teacher_model`` state dicts of one
IDEA-Research DINO model whose ``backbone.0`` is a Swin carrying the classification and
segmentation parts too. Into ``configs/foundation_x_release.py`` (the released architecture)
every key converts and every target key is filled, read from their code (``models/dino/
swin_transformer_CyclicSegmentation.py``, ``dino_F6.py``, ``deformable_transformer_F6.py``):

- Swin ``backbone.0.layers...`` (the detection Swin, timm <= 0.6 key layout) ->
  ``backbone.stages...``; their per-task norms -> ``TaskNormSwinTransformer``'s
  ``backbone.task_norms``: ``norm`` (cls path, stage 4) -> ``cls.3``, ``Locnorm<i>`` (loc
  path) -> ``loc.<i>``; ``Segnorm*`` (never applied: the seg path reads the raw stages) and
  the unused single classifier ``head`` are dropped, with that reason.
- ``backbone.0.classification_heads.<k>`` -> ``cls_head.heads.<cls-datasets[k]>``.
- The seg decoder -> ``PSPFPNNeck``: ``segmentation_PPN.stages.<k>`` -> ``seg_neck.psp.<k>``,
  ``bottleneck`` -> ``seg_neck.bottleneck``, ``segmentation_FPN.conv1x1.<i>`` ->
  ``lateral_convs.<i>``, ``smooth_conv.0/1/2`` (one conv under three names) -> ``smooth_conv``,
  ``conv_fusion`` -> ``fusion``; ``segmentation_heads.<k>`` (3x3) ->
  ``seg_head.heads.<seg-datasets[k]>``. Heads 0, 1 and 3 (TBX11K, NODE21, RSNA) were never
  trained (no masks in those datasets): a target without them drops them, with that reason.
- DINO: the rules of :mod:`fxmm.utils.state_dict_mapping.idea_dino`.

A target with the shared stage norms of mmpretrain's Swin (``configs/foundation_x.py``) gets
``norm<i>`` <- ``Locnorm<i>`` (i < 3) and ``norm3`` <- ``norm`` (``--norm3-from Locnorm3`` for
the loc path): the cls path is exact there, the loc path not, and its UperNet has no place for
the authors' seg decoder (reported unused; ``--allow-missing --allow-unused``).

Each copy is checked against the FoundationX of ``--config``; ``--copies both`` writes a
TeacherStudent checkpoint (``student.*``, ``teacher.*``), ``student``/``teacher`` plain FoundationX
keys. The report lists every key that found no place, and every key dropped on purpose with
the reason.
"""
import argparse
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import DictAction

from fxmm.apis import build_in_scope, foundation_x_cfg
from fxmm.models.necks import PSPFPNNeck
from fxmm.models.teacher_student import COPIES, join_copies
from fxmm.utils.launch import load_config
from fxmm.utils.state_dict_mapping import (ConversionError, KeyReport, KeyRule, MappedStateDict,
                                           StateDict, add_conversion_args, load_checkpoint_file,
                                           match_state_dict, save_converted, select_state_dict,
                                           swin_pad_small_map, timm_swin_to_mmpretrain)
from fxmm.utils.state_dict_mapping.idea_dino import (INPUT_PROJ_BIAS, DinoLayout, DinoTarget,
                                                     dino_rules)

# classification_heads.0..10 of the authors' Swin, in their order
FX_CLS_DATASETS = ('tbx11k', 'node21', 'candid_ptx', 'rsna_pneumonia', 'chestx_det', 'siim',
                   'chexpert', 'chestxray14', 'vindr_cxr', 'shenzhen', 'mimic_cxr')
# their localisation datasets in the same order (decoder k of a multi-decoder checkpoint)
FX_LOC_DATASETS = ('tbx11k', 'node21', 'candid_ptx', 'rsna_pneumonia', 'chestx_det', 'siim')
# segmentation_heads.0..5: the same order; their pretraining trained 2, 4 and 5 only
FX_SEG_DATASETS = FX_LOC_DATASETS
FX_UNTRAINED_SEG_HEADS = (0, 1, 3)
FX_UNTRAINED_SEG_DATASETS = tuple(FX_SEG_DATASETS[k] for k in FX_UNTRAINED_SEG_HEADS)
# the checkpoint entry of each copy
SOURCE_ENTRIES = dict(student='model', teacher='teacher_model')
SWIN = 'backbone.0.'
NORM3_SOURCES = ('norm', 'Locnorm3')
SEGNORM = "norms the authors' forward never applies (their seg path reads the raw stages)"
HEAD = "the authors' unused single classifier"
UNTRAINED_SEG_HEAD = ("a seg head the authors' pretraining never trained (no masks in its "
                      'dataset): its initialisation')
SEG_NOTE = ("the authors' segmentation decoder (segmentation_PPN/FPN/heads) is not converted: "
            "the target's seg_neck is not a PSPFPNNeck (e.g. mmseg's UPerHead in SharedUperNet)")


def shared_norm_rules(norm3_from: str, last_stage: int) -> List[KeyRule]:
    """The authors' norms into the one norm per stage of mmpretrain's Swin (the cls path
    exact with ``norm3_from='norm'``, the loc path with ``'Locnorm3'``)."""
    other = NORM3_SOURCES[1 - NORM3_SOURCES.index(norm3_from)]
    rules = [KeyRule(f'{SWIN}Locnorm{i}.{{p}}', f'backbone.norm{i}.{{p}}')
             for i in range(last_stage)]
    rules += [KeyRule(f'{SWIN}{norm3_from}.{{p}}', f'backbone.norm{last_stage}.{{p}}'),
              KeyRule(f'{SWIN}{other}.{{p}}', None,
                      why=f'{other}: fxmm has one stage-4 norm, taken from {norm3_from} '
                      '(--norm3-from)'),
              KeyRule(SWIN + 'Segnorm{i}.{p}', None, why=SEGNORM)]
    return rules


def task_norm_rules(task_norms: Dict[str, Sequence[int]], last_stage: int) -> List[KeyRule]:
    """The authors' per-task norms into ``TaskNormSwinTransformer.task_norms`` (``task ->
    stages`` of the target): ``norm`` is the cls path's stage-4 norm, ``Locnorm<i>`` /
    ``Segnorm<i>`` the loc / seg paths' stage-i norms."""
    rules = [KeyRule(f'{SWIN}norm.{{p}}', f'backbone.task_norms.cls.{last_stage}.{{p}}'),
             KeyRule(SWIN + 'Locnorm{i}.{p}', 'backbone.task_norms.loc.{i}.{p}')]
    if task_norms.get('seg'):
        rules.append(KeyRule(SWIN + 'Segnorm{i}.{p}', 'backbone.task_norms.seg.{i}.{p}'))
    else:
        rules.append(KeyRule(SWIN + 'Segnorm{i}.{p}', None, why=SEGNORM))
    return rules


def seg_decoder_rules(seg_datasets: Sequence[str], target_heads: Sequence[str]) -> List[KeyRule]:
    """The authors' ``segmentation_PPN/FPN`` into a ``PSPFPNNeck`` and their
    ``segmentation_heads.<k>`` into ``seg_head.heads.<seg_datasets[k]>`` (a never-trained
    head the target lacks is dropped; a trained one stays unused, so the report shows it)."""
    psp, fpn = SWIN + 'segmentation_PPN.', SWIN + 'segmentation_FPN.'
    rules = [
        KeyRule(psp + 'stages.{k}.1.weight', 'seg_neck.psp.{k}.1.conv.weight'),
        KeyRule(psp + 'stages.{k}.2.{p}', 'seg_neck.psp.{k}.1.bn.{p}'),
        KeyRule(psp + 'bottleneck.0.weight', 'seg_neck.bottleneck.conv.weight'),
        KeyRule(psp + 'bottleneck.1.{p}', 'seg_neck.bottleneck.bn.{p}'),
        KeyRule(fpn + 'conv1x1.{i}.{p}', 'seg_neck.lateral_convs.{i}.{p}'),
        # one conv used on three levels: three names of one tensor, one target
        KeyRule(fpn + 'smooth_conv.{i}.{p}', 'seg_neck.smooth_conv.{p}'),
        KeyRule(fpn + 'conv_fusion.0.weight', 'seg_neck.fusion.conv.weight'),
        KeyRule(fpn + 'conv_fusion.1.{p}', 'seg_neck.fusion.bn.{p}'),
    ]
    for k, name in enumerate(seg_datasets):
        source = f'{SWIN}segmentation_heads.{k}.{{p}}'
        if name in target_heads:
            rules.append(KeyRule(source, f'seg_head.heads.{name}.0.{{p}}'))
        elif k in FX_UNTRAINED_SEG_HEADS:
            rules.append(KeyRule(source, None, why=UNTRAINED_SEG_HEAD))
    return rules


def target_rules(model, cls_datasets: Sequence[str], seg_datasets: Sequence[str],
                 norm3_from: str) -> List[KeyRule]:
    """The rules of the Swin's norms and heads and of the seg decoder, for the FoundationX
    ``model`` the checkpoint converts into (the Swin blocks themselves are
    :func:`~fxmm.utils.state_dict_mapping.swin_rules`, the DINO :func:`dino_rules`)."""
    task_norms = getattr(model.backbone, 'task_norms', None)
    last_stage = len(model.backbone.stages) - 1
    if task_norms is not None:
        rules = task_norm_rules({task: [int(i) for i in norms]
                                 for task, norms in task_norms.items()}, last_stage)
    else:
        rules = shared_norm_rules(norm3_from, last_stage)
    rules.append(KeyRule(SWIN + 'head.{p}', None, why=HEAD))
    rules += [KeyRule(f'{SWIN}classification_heads.{k}.{{p}}', f'cls_head.heads.{name}.{{p}}')
              for k, name in enumerate(cls_datasets)]
    if isinstance(model.seg_neck, PSPFPNNeck):
        rules += seg_decoder_rules(seg_datasets, list(model.seg_head.heads))
    return rules


def convert_foundation_x(state_dict: StateDict, rules: Sequence[KeyRule],
                         loc_classes: Optional[Dict[str, Optional[int]]] = None,
                         num_in_levels: int = 3,
                         dino_target: Optional[DinoTarget] = None) -> MappedStateDict:
    """Rename one copy of the authors' Foundation X model to FoundationX keys.

    Args:
        state_dict (dict[str, Tensor]): The authors' tensors (``module.`` stripped).
        rules (Sequence[KeyRule]): The rules of the target's norms, heads and seg decoder
            (:func:`target_rules`).
        loc_classes (dict[str, int | None], optional): fxmm name of DINO decoder ``k`` (in
            order) -> its number of box classes (None: not a dataset of the target); None or
            {} leaves the DINO unconverted.
        num_in_levels (int): Backbone levels of the target's DINO neck. Defaults to 3.
        dino_target (DinoTarget, optional): The target DINO's options
            (:meth:`DinoTarget.of`); None: mmdet's DINO.

    Returns:
        MappedStateDict: FoundationX-keyed tensors and the left-over keys.
    """
    if not any(k.startswith(SWIN + 'layers.') for k in state_dict):
        raise ConversionError(f'no {SWIN}layers.* keys: not a Foundation X checkpoint of the '
                              "authors' code")
    rules = list(rules)
    if loc_classes:
        rules += dino_rules(DinoLayout.read(state_dict), loc_classes, num_in_levels,
                            dino_target)
    # the final norm is mapped by the target rules (per task, or the shared norm3)
    return timm_swin_to_mmpretrain(state_dict, SWIN, 'backbone.', None, rules)


def exactness_notes(state_dict: StateDict, model, report: KeyReport,
                    norm3_from: str) -> List[str]:
    """Where the converted model will not compute what the authors' model did, and why."""
    notes = []
    biases = [state_dict[k] for k, why in report.dropped.items() if why == INPUT_PROJ_BIAS]
    if biases and max(float(b.abs().max()) for b in biases) > 0:
        notes.append('localisation is approximate: the non-zero input_proj conv biases (max '
                     f'{max(float(b.abs().max()) for b in biases):.3g}) have no place in the '
                     "target's DINO neck")
    norm, locnorm = (state_dict.get(f'{SWIN}{n}.weight') for n in NORM3_SOURCES)
    if (getattr(model.backbone, 'task_norms', None) is None and norm is not None
            and locnorm is not None and not torch.equal(norm, locnorm)):
        path = 'localisation' if norm3_from == 'norm' else 'classification'
        notes.append(f'{path} is approximate: its stage-4 norm is {norm3_from} (the target has '
                     'one norm per stage; configs/foundation_x_release.py has one per task)')
    if swin_pad_small_map(model.backbone) is False:
        notes.append("the authors' Swin shifts windows even where a stage map equals the window "
                     '(stage 4 at 224 px); the target has pad_small_map=False and does not: set '
                     'backbone.pad_small_map=True for their outputs')
    if (any(k.startswith(SWIN + 'segmentation_') for k in state_dict)
            and not isinstance(model.seg_neck, PSPFPNNeck)):
        notes.append(SEG_NOTE)
    return notes


def convert(checkpoint: dict,
            model_cfg: dict,
            copies: str = 'both',
            cls_datasets: Sequence[str] = FX_CLS_DATASETS,
            loc_datasets: Sequence[str] = FX_LOC_DATASETS,
            norm3_from: str = 'norm',
            seg_datasets: Sequence[str] = FX_SEG_DATASETS
            ) -> Tuple[StateDict, Dict[str, KeyReport]]:
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
        norm3_from (str): The stage-4 norm of a target with one norm per stage: ``'norm'``
            (cls path, default) or ``'Locnorm3'`` (loc path); unused with per-task norms.
        seg_datasets (Sequence[str]): fxmm names of the segmentation heads, in order (used
            when the target's seg neck is a ``PSPFPNNeck``).

    Returns:
        tuple: The state dict and the :class:`KeyReport` of each converted copy.
    """
    names = list(COPIES) if copies == 'both' else [copies]
    if not set(names) <= set(COPIES):
        raise ValueError(f"copies must be 'both' or one of {COPIES}, got {copies!r}")
    if norm3_from not in NORM3_SOURCES:
        raise ValueError(f'norm3_from must be one of {NORM3_SOURCES}, got {norm3_from!r}')
    model = build_in_scope(model_cfg, 'fxmm')
    reference = model.state_dict()
    rules = target_rules(model, cls_datasets, seg_datasets, norm3_from)
    loc_classes, num_in_levels, dino_target = {}, 0, None
    if model.loc_head is not None:
        num_in_levels = len(model.loc_head.in_indices)
        dino_target = DinoTarget.of(model.loc_head)
        branches = model.loc_head.branches
        loc_classes = {name: branches[name].num_classes if name in branches else None
                       for name in loc_datasets}
    converted, reports = {}, {}
    for name in names:
        state_dict, _ = select_state_dict(checkpoint, SOURCE_ENTRIES[name])
        mapped = convert_foundation_x(state_dict, rules, loc_classes, num_in_levels,
                                      dino_target)
        converted[name], reports[name] = match_state_dict(mapped, reference)
        reports[name].notes += exactness_notes(state_dict, model, reports[name], norm3_from)
    if copies == 'both':
        return join_copies(converted['student'], converted['teacher']), reports
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
    parser.add_argument('--seg-datasets', nargs='+', default=list(FX_SEG_DATASETS),
                        help='fxmm names of segmentation_heads.0, 1, ... (default: '
                        f'{" ".join(FX_SEG_DATASETS)})')
    parser.add_argument('--norm3-from', default='norm', choices=NORM3_SOURCES,
                        help='a target with one norm per stage (configs/foundation_x.py): its '
                        'stage-4 norm, norm (cls path exact, default) or Locnorm3 (loc path)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    add_conversion_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    model_cfg = foundation_x_cfg(load_config(args.config, cfg_options=args.cfg_options))
    checkpoint = load_checkpoint_file(args.src, trusted=args.trusted)
    converted, reports = convert(checkpoint, model_cfg, args.copies, args.cls_datasets,
                                 args.loc_datasets, args.norm3_from, args.seg_datasets)
    for name, report in reports.items():
        report.log(f'{args.src} [{SOURCE_ENTRIES[name]}] -> FoundationX {name} of {args.config}')
    for report in reports.values():
        report.check(args.allow_missing, args.allow_unused)
    save_converted(converted, args.dst, meta=dict(
        converter='foundation_x_to_fxmm', source=args.src, config=args.config,
        copies=args.copies, cls_datasets=list(args.cls_datasets),
        loc_datasets=list(args.loc_datasets), seg_datasets=list(args.seg_datasets),
        norm3_from=args.norm3_from,
        missing={name: r.missing for name, r in reports.items()},
        notes={name: r.notes for name, r in reports.items()}))


if __name__ == '__main__':
    main()
