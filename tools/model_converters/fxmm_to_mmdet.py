"""Export one dataset's detector of an fxmm checkpoint as a plain mmdet DINO.

    python tools/model_converters/fxmm_to_mmdet.py configs/foundation_x.py \\
        work_dirs/foundation_x/best.pth fx_dino_node21 --dataset node21 [--copy teacher]

writes ``fx_dino_node21.pth`` and ``fx_dino_node21.py`` (``default_scope = 'mmdet'``, ``model``
= an ``mmdet`` ``DINO`` with the same backbone config, ``load_from`` the ``.pth``). The DINO is
fxmm's ``SharedDINO`` for that dataset: the backbone (stage norms of the levels DINO reads),
the shared input projection (``neck``), ``level_embed`` and ``encoder``, and the dataset's
branch (``decoder``, ``query_embedding``, ``memory_trans_fc/norm``, ``dn_query_generator``,
``bbox_head`` with the dataset's classes). The data preprocessor normalises 0..255 images with
fxmm's mean/std x 255, as fxmm does 0..1 grey images repeated to 3 channels.

The checkpoint must fit the config (loaded strictly into its FoundationX); the export is
checked by building the DINO from the written config in mmdet and comparing every key and
shape.
"""
import argparse
import copy
import inspect
import re
from collections import OrderedDict
from typing import Tuple

from torch import nn

from fxmm.apis import (add_export_args, check_export, image_preprocessor_cfg,
                       load_fxmm_checkpoint, save_export)
from fxmm.models.detectors.shared_dino import SharedDINO
from fxmm.utils.state_dict_mapping import ConversionError, KeyMapper, KeyRule, StateDict

_SHARED_DINO_DEFAULTS = {name: p.default for name, p in
                         inspect.signature(SharedDINO).parameters.items()
                         if p.default is not inspect.Parameter.empty}


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
        encoder=head._encoder_cfg(cfg['encoder']),
        decoder=head._decoder_cfg(cfg['decoder']),
        positional_encoding=cfg['positional_encoding'],
        bbox_head=dict(cfg['bbox_head'], num_classes=branch.num_classes),
        dn_cfg=cfg['dn_cfg'],
        train_cfg=cfg['train_cfg'],
        test_cfg=cfg['test_cfg'])


def export_dino(model: nn.Module, model_cfg: dict, dataset: str) -> Tuple[StateDict, dict]:
    """``dataset``'s detector of a FoundationX as an mmdet DINO.

    Returns:
        tuple: The DINO state dict (checked against the DINO built from the config) and the
        config.
    """
    cfg = dino_config(model, model_cfg, dataset)
    parts = ('backbone.', 'loc_head.neck.', 'loc_head.encoder.', 'loc_head.level_embed',
             f'loc_head.branches.{dataset}.')
    state_dict = OrderedDict((k, v) for k, v in model.state_dict().items() if k.startswith(parts))
    norms = {int(m.group(1)) for k in state_dict for m in [re.match(r'backbone\.norm(\d+)\.', k)]
             if m}
    rules = [KeyRule('backbone.{rest*}', 'backbone.{rest*}'),
             KeyRule('loc_head.neck.{rest*}', 'neck.{rest*}'),
             KeyRule('loc_head.encoder.{rest*}', 'encoder.{rest*}'),
             KeyRule('loc_head.level_embed', 'level_embed'),
             KeyRule(f'loc_head.branches.{dataset}.{{rest*}}', '{rest*}')]
    rules += [KeyRule(f'backbone.norm{i}.{{p}}', None, why='stage norms DINO does not read')
              for i in sorted(norms - set(cfg['backbone']['out_indices']))]
    mapped = KeyMapper(rules).convert(state_dict)
    exported = check_export(mapped, cfg, 'mmdet', f'FoundationX {dataset} detector -> mmdet DINO')
    return exported, cfg


def parse_args():
    parser = argparse.ArgumentParser(
        description="Export one dataset's detector of an fxmm checkpoint as an mmdet DINO")
    add_export_args(parser)
    parser.add_argument('--dataset', required=True, help='the dataset whose detector to export')
    return parser.parse_args()


def main():
    args = parse_args()
    model, model_cfg, what = load_fxmm_checkpoint(args.config, args.checkpoint, args.copy,
                                                  args.cfg_options)
    exported, cfg = export_dino(model, model_cfg, args.dataset)
    save_export(exported, cfg, 'mmdet', args.out, meta=dict(
        converter='fxmm_to_mmdet', source=args.checkpoint, source_entry=what,
        config=args.config, dataset=args.dataset))


if __name__ == '__main__':
    main()
