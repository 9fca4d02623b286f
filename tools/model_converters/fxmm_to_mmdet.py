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
import re
from collections import OrderedDict
from typing import Tuple

from torch import nn

from fxmm.apis import add_export_args, check_export, load_fxmm_checkpoint, save_export
from fxmm.apis.export_configs import dino_config
from fxmm.utils.state_dict_mapping import KeyMapper, KeyRule, StateDict


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
