"""IDEA-Research DINO state dicts (the authors' Foundation X, single or one decoder per
dataset) -> fxmm's :class:`~fxmm.models.detectors.SharedDINO` keys: the key rules of the
localisation path of ``tools/model_converters/foundation_x_to_fxmm.py``."""
import re
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from .key_rules import ConversionError, KeyRule, StateDict

INPUT_PROJ_BIAS = "input_proj conv biases (mmdet's ChannelMapper has none before GroupNorm)"
# IDEA DINO's dn_labelbook_size (100) + 1: the rows of label_enc
LABELBOOK_ROWS = 101


def decoder_prefix(k: Optional[int]) -> Dict[str, str]:
    """Key prefixes of DINO decoder ``k`` in the authors' multi-decoder layout, or of IDEA's
    single decoder (``k`` None)."""
    if k is None:
        return dict(decoder='transformer.decoder.', cls='class_embed.', box='bbox_embed.',
                    enc_cls='transformer.enc_out_class_embed.',
                    enc_box='transformer.enc_out_bbox_embed.')
    return dict(decoder=f'transformer.decoder.{k}.', cls=f'class_embed.{k}.',
                box=f'bbox_embed.{k}.', enc_cls=f'transformer.enc_out_class_embed.{k}.',
                enc_box=f'transformer.enc_out_bbox_embed.{k}.')


@dataclass
class DinoLayout:
    """The shape of an IDEA DINO state dict.

    Attributes:
        decoders (list[dict]): :func:`decoder_prefix` of each decoder, in order ([] without
            a DINO).
        num_layers (int): Decoder layers.
        num_levels (int): Feature levels (``input_proj`` entries).
    """
    decoders: List[Dict[str, str]]
    num_layers: int
    num_levels: int

    @classmethod
    def read(cls, state_dict: StateDict) -> 'DinoLayout':
        """Read the layout from the keys of ``state_dict``."""

        def indices(pattern):
            return sorted({int(m.group(1)) for k in state_dict for m in [re.match(pattern, k)]
                           if m})

        multi = indices(r'transformer\.decoder\.(\d+)\.layers\.')
        if multi:
            decoders = [decoder_prefix(k) for k in multi]
        elif any(k.startswith('transformer.decoder.layers.') for k in state_dict):
            decoders = [decoder_prefix(None)]
        else:
            return cls([], 0, 0)
        layers = indices(re.escape(decoders[0]['decoder']) + r'layers\.(\d+)\.')
        return cls(decoders, len(layers), len(indices(r'input_proj\.(\d+)\.')))


def _rows(n: int):
    return lambda v: v[:n].clone()


def _pad_rows(v):
    return torch.cat([v, v.new_zeros(LABELBOOK_ROWS - v.shape[0], *v.shape[1:])])


def dino_rules(layout: DinoLayout, loc_classes: Dict[str, Optional[int]],
               num_in_levels: int) -> List[KeyRule]:
    """Rules from IDEA DINO keys (single or multi decoder) to fxmm's SharedDINO.

    Args:
        layout (DinoLayout): The source's decoders, layers and levels.
        loc_classes (dict[str, int | None]): fxmm dataset name of decoder ``k`` (in order) ->
            its number of box classes (the rows of ``label_enc`` it takes; None: all).
        num_in_levels (int): Backbone levels of the DINO neck (``len(in_indices)``); further
            ``input_proj`` levels are its extra convs.

    Returns:
        list[KeyRule]: The rules.
    """
    if len(layout.decoders) != len(loc_classes):
        raise ConversionError(
            f'the checkpoint has {len(layout.decoders)} DINO decoder(s) but {len(loc_classes)} '
            f'localisation dataset names were given ({list(loc_classes)}): pass --loc-datasets '
            'with one fxmm dataset name per decoder, in decoder order')
    if not layout.decoders:
        return []
    rules = [KeyRule('transformer.level_embed', 'loc_head.level_embed')]
    for lvl in range(layout.num_levels):
        neck = (f'loc_head.neck.convs.{lvl}' if lvl < num_in_levels else
                f'loc_head.neck.extra_convs.{lvl - num_in_levels}')
        rules += [KeyRule(f'input_proj.{lvl}.0.weight', f'{neck}.conv.weight'),
                  KeyRule(f'input_proj.{lvl}.1.{{p}}', f'{neck}.gn.{{p}}'),
                  KeyRule(f'input_proj.{lvl}.0.bias', None, why=INPUT_PROJ_BIAS)]
    enc, fx_enc = 'transformer.encoder.layers.{i}.', 'loc_head.encoder.layers.{i}.'
    rules += [KeyRule(enc + 'self_attn.{m}.{p}', fx_enc + 'self_attn.{m}.{p}'),
              KeyRule(enc + 'linear1.{p}', fx_enc + 'ffn.layers.0.0.{p}'),
              KeyRule(enc + 'linear2.{p}', fx_enc + 'ffn.layers.1.{p}'),
              KeyRule(enc + 'norm1.{p}', fx_enc + 'norms.0.{p}'),
              KeyRule(enc + 'norm2.{p}', fx_enc + 'norms.1.{p}')]
    for src, (name, num_classes) in zip(layout.decoders, loc_classes.items()):
        rules += _branch_rules(src, f'loc_head.branches.{name}.', num_classes, layout.num_layers)
    rules += [KeyRule(f'{name}.{{rest*}}', None,
                      why="copies of the box/class heads the authors' forward never uses")
              for name in ('bbox_embed_', 'class_embed_')]
    return rules


def _branch_rules(src: Dict[str, str], branch: str, num_classes: Optional[int],
                  num_layers: int) -> List[KeyRule]:
    """Rules of one decoder (``src`` prefixes) to the fxmm branch ``branch``."""
    dec, fx_dec = src['decoder'] + 'layers.{i}.', branch + 'decoder.layers.{i}.'
    head = branch + 'bbox_head.'
    rows = dict(fn=_rows(num_classes), inverse_fn=_pad_rows) if num_classes else {}
    rules = [
        KeyRule(dec + 'self_attn.in_proj_{p}', fx_dec + 'self_attn.attn.in_proj_{p}'),
        KeyRule(dec + 'self_attn.out_proj.{p}', fx_dec + 'self_attn.attn.out_proj.{p}'),
        KeyRule(dec + 'cross_attn.{m}.{p}', fx_dec + 'cross_attn.{m}.{p}'),
        # IDEA's order is self-attn -> norm2, cross-attn -> norm1, ffn -> norm3
        KeyRule(dec + 'norm2.{p}', fx_dec + 'norms.0.{p}'),
        KeyRule(dec + 'norm1.{p}', fx_dec + 'norms.1.{p}'),
        KeyRule(dec + 'norm3.{p}', fx_dec + 'norms.2.{p}'),
        KeyRule(dec + 'linear1.{p}', fx_dec + 'ffn.layers.0.0.{p}'),
        KeyRule(dec + 'linear2.{p}', fx_dec + 'ffn.layers.1.{p}'),
        KeyRule(src['decoder'] + 'norm.{p}', branch + 'decoder.norm.{p}'),
        KeyRule(src['decoder'] + 'ref_point_head.layers.{j}.{p}',
                branch + 'decoder.ref_point_head.layers.{j}.{p}'),
        KeyRule(src['enc_cls'] + '{p}', f'{head}cls_branches.{num_layers}.{{p}}'),
        # shared by the authors' decoders, one copy per fxmm branch
        KeyRule('transformer.tgt_embed.weight', branch + 'query_embedding.weight'),
        KeyRule('transformer.enc_output.{p}', branch + 'memory_trans_fc.{p}'),
        KeyRule('transformer.enc_output_norm.{p}', branch + 'memory_trans_norm.{p}'),
        KeyRule('label_enc.weight', branch + 'dn_query_generator.label_embedding.weight', **rows),
    ]
    # the decoder holds aliases of the model's class/box embeds: both map, equal values;
    # IDEA's MLP layers.j is mmdet's Sequential(Linear, ReLU, ...)[2 * j]
    cls_aliases = (src['cls'], src['decoder'] + 'class_embed.')
    box_aliases = (src['box'], src['decoder'] + 'bbox_embed.')
    for i in range(num_layers):
        rules += [KeyRule(f'{cls}{i}.{{p}}', f'{head}cls_branches.{i}.{{p}}')
                  for cls in cls_aliases]
        rules += [KeyRule(f'{box}{i}.layers.{j}.{{p}}', f'{head}reg_branches.{i}.{2 * j}.{{p}}')
                  for box in box_aliases for j in range(3)]
    rules += [KeyRule(f"{src['enc_box']}layers.{j}.{{p}}",
                      f'{head}reg_branches.{num_layers}.{2 * j}.{{p}}') for j in range(3)]
    return rules
