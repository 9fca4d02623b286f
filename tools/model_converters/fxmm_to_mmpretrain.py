"""Export the backbone of an fxmm checkpoint as a plain mmpretrain (or other) backbone.

    python tools/model_converters/fxmm_to_mmpretrain.py configs/foundation_x.py \\
        work_dirs/foundation_x/best.pth fx_swin-b [--copy teacher]

writes ``fx_swin-b.pth`` (the backbone tensors, keys without prefix) and ``fx_swin-b.py``
(``default_scope = 'mmpretrain'``, ``model`` = the backbone config, whose ``init_cfg`` loads
the ``.pth``). In your own project, use that dict as ``backbone`` (as
``type='mmpretrain.SwinTransformer'`` outside mmpretrain's scope), or point any backbone's
``init_cfg=dict(type='Pretrained', checkpoint='fx_swin-b.pth')`` at the file.

The checkpoint must fit the config (loaded strictly into its FoundationX); the export is
checked by building the backbone from the written config in its own library and comparing
every key and shape.
"""
import argparse
from collections import OrderedDict
from typing import Tuple

from torch import nn

from fxmm.apis import add_export_args, check_export, load_fxmm_checkpoint, save_export
from fxmm.apis.export_configs import split_scope
from fxmm.utils.state_dict_mapping import KeyMapper, KeyRule, StateDict


def export_backbone(model: nn.Module, backbone_cfg: dict) -> Tuple[StateDict, dict, str]:
    """The backbone of a FoundationX as a stand-alone backbone of its own library.

    Args:
        model (nn.Module): The FoundationX, weights loaded.
        backbone_cfg (dict): Its ``backbone`` config.

    Returns:
        tuple: The backbone state dict (checked against the backbone built from the returned
        config), that config (``init_cfg`` removed) and its scope.
    """
    cfg, scope = split_scope(dict(backbone_cfg, init_cfg=None))
    backbone = OrderedDict((k, v) for k, v in model.state_dict().items()
                           if k.startswith('backbone.'))
    mapped = KeyMapper([KeyRule('backbone.{rest*}', '{rest*}')]).convert(backbone)
    return check_export(mapped, cfg, scope, f'FoundationX backbone -> {scope} {cfg["type"]}'), \
        cfg, scope


def parse_args():
    parser = argparse.ArgumentParser(description='Export the backbone of an fxmm checkpoint')
    add_export_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    model, model_cfg, what = load_fxmm_checkpoint(args.config, args.checkpoint, args.copy,
                                                  args.cfg_options)
    exported, cfg, scope = export_backbone(model, model_cfg['backbone'])
    save_export(exported, cfg, scope, args.out, meta=dict(
        converter='fxmm_to_mmpretrain', source=args.checkpoint, source_entry=what,
        config=args.config))


if __name__ == '__main__':
    main()
