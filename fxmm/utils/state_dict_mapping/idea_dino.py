"""IDEA-Research DINO state dicts (the authors' Foundation X, single or one decoder per
dataset) -> fxmm's :class:`~fxmm.models.detectors.SharedDINO` keys: the key rules of the
localisation path of ``tools/model_converters/foundation_x_to_fxmm.py``.

Two source layouts, read from the keys (:class:`DinoLayout`):

- IDEA's DINO (``transformer.decoder.layers...``, one decoder): ``class_embed.<i>`` /
  ``bbox_embed.<i>`` predict the outputs and ``bbox_embed`` also refines the reference boxes;
  ``transformer.enc_output(_norm)`` is one module;
- the authors' Foundation X release (``transformer.decoder.<k>.layers...``): per decoder ``k``
  its own ``transformer.enc_output.<k>`` / ``enc_output_norm.<k>`` (memory projection of the
  two-stage scoring) and ``enc_outputMem_LinearProjection.<k>`` (a Linear on the encoder memory
  ahead of the proposals and the decoder); the outputs come from ``class_embed_.<k>`` /
  ``bbox_embed_.<k>``, ``bbox_embed.<k>`` only refines the reference boxes, and
  ``class_embed.<k>`` is never used by their forward.

Class rows of the source are COCO category ids (ids from 1, row 0 unused: :data:`FIRST_ID`);
the target's rows come from :class:`DinoTarget`.
"""
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

from .key_rules import ConversionError, KeyRule, StateDict

INPUT_PROJ_BIAS = "input_proj conv biases (mmdet's ChannelMapper has none before GroupNorm)"
UNUSED_CLASS_EMBED = ("class_embed: never used by the authors' forward (their outputs come from "
                      'class_embed_)')
# the source's row of dataset class 0: category ids from 1 (COCO), as IDEA's DINO and the
# authors' Foundation X index their class layers and label_enc
FIRST_ID = 1


def decoder_prefix(k: Optional[int]) -> Dict[str, str]:
    """Key prefixes of DINO decoder ``k`` in the authors' multi-decoder layout, or of IDEA's
    single decoder (``k`` None). ``out_cls``/``out_box``/``mem_proj`` exist in the
    multi-decoder layout only; its ``mem_trans``/``mem_norm`` are the per-decoder names (see
    :attr:`DinoLayout.per_decoder_memory_trans`)."""
    if k is None:
        return dict(decoder='transformer.decoder.', cls='class_embed.', box='bbox_embed.',
                    enc_cls='transformer.enc_out_class_embed.',
                    enc_box='transformer.enc_out_bbox_embed.',
                    mem_trans='transformer.enc_output.', mem_norm='transformer.enc_output_norm.')
    return dict(decoder=f'transformer.decoder.{k}.', cls=f'class_embed.{k}.',
                box=f'bbox_embed.{k}.', enc_cls=f'transformer.enc_out_class_embed.{k}.',
                enc_box=f'transformer.enc_out_bbox_embed.{k}.',
                out_cls=f'class_embed_.{k}.', out_box=f'bbox_embed_.{k}.',
                mem_proj=f'transformer.enc_outputMem_LinearProjection.{k}.',
                mem_trans=f'transformer.enc_output.{k}.',
                mem_norm=f'transformer.enc_output_norm.{k}.')


@dataclass
class DinoLayout:
    """The shape of an IDEA DINO state dict.

    Attributes:
        decoders (list[dict]): :func:`decoder_prefix` of each decoder, in order ([] without
            a DINO).
        num_layers (int): Decoder layers.
        num_levels (int): Feature levels (``input_proj`` entries).
        output_heads (bool): ``class_embed_`` / ``bbox_embed_`` predict the outputs (the
            release); False: ``class_embed`` / ``bbox_embed`` do (IDEA).
        memory_proj (bool): Has ``enc_outputMem_LinearProjection.<k>``.
        per_decoder_memory_trans (bool): ``enc_output(_norm).<k>`` per decoder, not one.
    """
    decoders: List[Dict[str, str]]
    num_layers: int
    num_levels: int
    output_heads: bool = False
    memory_proj: bool = False
    per_decoder_memory_trans: bool = False

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
        return cls(decoders, len(layers), len(indices(r'input_proj\.(\d+)\.')),
                   output_heads=bool(multi) and all(
                       any(k.startswith(name) for k in state_dict)
                       for name in ('class_embed_.', 'bbox_embed_.')),
                   memory_proj=any(k.startswith('transformer.enc_outputMem_LinearProjection.')
                                   for k in state_dict),
                   per_decoder_memory_trans=bool(indices(r'transformer\.enc_output\.(\d+)')))


@dataclass
class DinoTarget:
    """What the target :class:`~fxmm.models.detectors.SharedDINO` has beyond mmdet's DINO
    (the defaults: mmdet's DINO, class ``i`` at row ``i``).

    Attributes:
        neck_bias (bool): The input projection convs have biases.
        memory_proj (bool): Its branches have ``memory_proj``.
        separate_box_refine (bool): Its branches refine boxes with ``refine_branch``.
        first_class_row (int): The row of class 0 in its class layers and label embedding.
        class_rows (dict[str, int]): Dataset -> rows of its class layers (absent: its classes).
        label_rows (dict[str, int]): Dataset -> rows of its de-noising label embedding
            (absent: its class rows).
    """
    neck_bias: bool = False
    memory_proj: bool = False
    separate_box_refine: bool = False
    first_class_row: int = 0
    class_rows: Dict[str, int] = field(default_factory=dict)
    label_rows: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, loc_head) -> 'DinoTarget':
        """The target of a built ``SharedDINO`` (its branches share their options)."""
        branches = list(loc_head.branches.items())
        first = branches[0][1]
        return cls(
            neck_bias=loc_head.neck.convs[0].conv.bias is not None,
            memory_proj=first.memory_proj is not None,
            separate_box_refine=first.refine_branch is not None,
            first_class_row=first.first_class_row,
            class_rows={name: b.num_class_rows for name, b in branches},
            label_rows={name: b.dn_query_generator.label_embedding.num_embeddings
                        for name, b in branches})


def _row_window(offset: int, rows: Optional[int], what: str):
    """``fn`` / ``inverse_fn`` taking target rows ``r`` from source rows ``r + offset``
    (``rows`` None: the dataset is not in the target; all rows from ``offset`` on)."""

    def fn(v: Tensor) -> Tensor:
        end = v.shape[0] if rows is None else offset + rows
        if end > v.shape[0]:
            raise ConversionError(f'{what}: the target takes rows {offset}..{end - 1} of the '
                                  f'source, which has {v.shape[0]}')
        return v[offset:end].clone()

    def inverse_fn(v: Tensor) -> Tensor:  # zero rows before the target's
        return torch.cat([v.new_zeros(offset, *v.shape[1:]), v])

    return dict(fn=fn, inverse_fn=inverse_fn)


def dino_rules(layout: DinoLayout, loc_classes: Dict[str, Optional[int]],
               num_in_levels: int, target: Optional[DinoTarget] = None) -> List[KeyRule]:
    """Rules from IDEA DINO keys (single or multi decoder) to fxmm's SharedDINO.

    A source key with no place in the target (e.g. the release's memory projection in a
    target without ``memory_proj``) matches no rule and is reported as unused; a key the
    source's forward never uses is dropped with the reason.

    Args:
        layout (DinoLayout): The source's decoders, layers and levels.
        loc_classes (dict[str, int | None]): fxmm dataset name of decoder ``k`` (in order) ->
            its number of box classes (None: not a dataset of the target).
        num_in_levels (int): Backbone levels of the DINO neck (``len(in_indices)``); further
            ``input_proj`` levels are its extra convs.
        target (DinoTarget, optional): The target's options (:meth:`DinoTarget.of`); None:
            mmdet's DINO.

    Returns:
        list[KeyRule]: The rules.
    """
    target = target or DinoTarget()
    if len(layout.decoders) != len(loc_classes):
        raise ConversionError(
            f'the checkpoint has {len(layout.decoders)} DINO decoder(s) but {len(loc_classes)} '
            f'localisation dataset names were given ({list(loc_classes)}): pass --loc-datasets '
            'with one fxmm dataset name per decoder, in decoder order')
    if not layout.decoders:
        return []
    offset = FIRST_ID - target.first_class_row
    if offset < 0:
        raise ConversionError(f'the target puts class 0 at row {target.first_class_row}; the '
                              f'source has it at row {FIRST_ID} and no rows before it')
    rules = [KeyRule('transformer.level_embed', 'loc_head.level_embed')]
    for lvl in range(layout.num_levels):
        neck = (f'loc_head.neck.convs.{lvl}' if lvl < num_in_levels else
                f'loc_head.neck.extra_convs.{lvl - num_in_levels}')
        rules += [KeyRule(f'input_proj.{lvl}.0.weight', f'{neck}.conv.weight'),
                  KeyRule(f'input_proj.{lvl}.1.{{p}}', f'{neck}.gn.{{p}}'),
                  KeyRule(f'input_proj.{lvl}.0.bias', f'{neck}.conv.bias') if target.neck_bias
                  else KeyRule(f'input_proj.{lvl}.0.bias', None, why=INPUT_PROJ_BIAS)]
    enc, fx_enc = 'transformer.encoder.layers.{i}.', 'loc_head.encoder.layers.{i}.'
    rules += [KeyRule(enc + 'self_attn.{m}.{p}', fx_enc + 'self_attn.{m}.{p}'),
              KeyRule(enc + 'linear1.{p}', fx_enc + 'ffn.layers.0.0.{p}'),
              KeyRule(enc + 'linear2.{p}', fx_enc + 'ffn.layers.1.{p}'),
              KeyRule(enc + 'norm1.{p}', fx_enc + 'norms.0.{p}'),
              KeyRule(enc + 'norm2.{p}', fx_enc + 'norms.1.{p}')]
    for src, (name, num_classes) in zip(layout.decoders, loc_classes.items()):
        class_rows = target.class_rows.get(name, num_classes)
        label_rows = target.label_rows.get(name, class_rows)
        rules += _branch_rules(
            src, f'loc_head.branches.{name}.', layout, target,
            class_rows=_row_window(offset, class_rows, f'the class rows of {name!r}'),
            label_rows=_row_window(offset, label_rows, f'the label_enc rows of {name!r}'))
    return rules


def _mlp_rules(src: str, dst: str) -> List[KeyRule]:
    """IDEA's 3-layer box MLP ``layers.j`` -> mmdet's Sequential(Linear, ReLU, ...)[2 * j]."""
    return [KeyRule(f'{src}layers.{j}.{{p}}', f'{dst}.{2 * j}.{{p}}') for j in range(3)]


def _branch_rules(src: Dict[str, str], branch: str, layout: DinoLayout, target: DinoTarget,
                  class_rows: Dict[str, Callable], label_rows: Dict[str, Callable]
                  ) -> List[KeyRule]:
    """Rules of one decoder (``src`` prefixes) to the fxmm branch ``branch``; ``class_rows`` /
    ``label_rows``: the ``fn`` / ``inverse_fn`` of the class layers / label embedding."""
    dec, fx_dec = src['decoder'] + 'layers.{i}.', branch + 'decoder.layers.{i}.'
    head = branch + 'bbox_head.'
    mem_trans, mem_norm = src['mem_trans'], src['mem_norm']
    if not layout.per_decoder_memory_trans:  # one module for every decoder
        mem_trans, mem_norm = 'transformer.enc_output.', 'transformer.enc_output_norm.'
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
        KeyRule(src['enc_cls'] + '{p}', f'{head}cls_branches.{layout.num_layers}.{{p}}',
                **class_rows),
        # one module for all the authors' decoders, one copy per fxmm branch
        KeyRule('transformer.tgt_embed.weight', branch + 'query_embedding.weight'),
        KeyRule('label_enc.weight', branch + 'dn_query_generator.label_embedding.weight',
                **label_rows),
        # per decoder in the release, one module in IDEA's DINO
        KeyRule(mem_trans + '{p}', branch + 'memory_trans_fc.{p}'),
        KeyRule(mem_norm + '{p}', branch + 'memory_trans_norm.{p}'),
    ]
    rules += _mlp_rules(src['enc_box'], f'{head}reg_branches.{layout.num_layers}')
    if layout.memory_proj and target.memory_proj:
        rules.append(KeyRule(src['mem_proj'] + '{p}', branch + 'memory_proj.{p}'))
    # the decoder holds aliases of the model's class/box embeds: both map, equal values
    cls_aliases = (src['cls'], src['decoder'] + 'class_embed.')
    box_aliases = (src['box'], src['decoder'] + 'bbox_embed.')
    for i in range(layout.num_layers):
        if layout.output_heads:  # outputs from class_embed_/bbox_embed_, bbox_embed refines
            rules.append(KeyRule(f"{src['out_cls']}{i}.{{p}}", f'{head}cls_branches.{i}.{{p}}',
                                 **class_rows))
            rules += _mlp_rules(f"{src['out_box']}{i}.", f'{head}reg_branches.{i}')
            rules += [KeyRule(f'{cls}{i}.{{p}}', None, why=UNUSED_CLASS_EMBED)
                      for cls in cls_aliases]
            if target.separate_box_refine:  # one MLP under every layer's name in the source
                rules += [rule for box in box_aliases
                          for rule in _mlp_rules(f'{box}{i}.', f'{branch}refine_branch')]
        else:  # IDEA: class_embed/bbox_embed predict, bbox_embed also refines
            rules += [KeyRule(f'{cls}{i}.{{p}}', f'{head}cls_branches.{i}.{{p}}', **class_rows)
                      for cls in cls_aliases]
            targets = [f'{head}reg_branches.{i}']
            if target.separate_box_refine:  # exact if the source shares it across layers
                targets.append(f'{branch}refine_branch')
            rules += [rule for box in box_aliases for dst in targets
                      for rule in _mlp_rules(f'{box}{i}.', dst)]
    return rules
