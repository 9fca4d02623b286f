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

from fxmm.apis import add_export_args, check_export, load_fxmm_checkpoint, save_export
from fxmm.apis.export_configs import upernet_config
from fxmm.utils.state_dict_mapping import KeyMapper, KeyRule, StateDict


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
