"""Reference forward of the authors' released Foundation X DINO in plain torch, on their own
state dict.

Independent of fxmm, mmdet and mmcv (plain torch only), written from reading jlianglab/
Foundation_X ``models/dino/dino_F6.py`` (``DINO.forward``), ``deformable_transformer_F6.py``
(``DeformableTransformer.forward``, its encoder and decoder layers), ``utils.py``
(``gen_encoder_output_proposals``, ``gen_sineembed_for_position``, ``MLP``),
``position_encoding.py`` (``PositionEmbeddingSineHW``, temperatures 20), ``ops/`` (the
multi-scale deformable attention) and ``config/DINO/DINO_4scale_swinBASE.py``, at inference
(no de-noising queries), for images without padding:

- ``input_proj.<l>`` (conv with bias + GroupNorm 32) on the loc path's backbone maps, and a
  stride-2 3x3 conv on the last map for the 4th level; sine positions + ``level_embed``;
- the shared deformable encoder (post-norm layers);
- decoder ``k``: ``enc_outputMem_LinearProjection.<k>`` on the memory (both for the proposals
  and as the decoder's values), the proposals (``0.05 * 2^level`` boxes at the token centres,
  logit space, tokens outside 0.01-0.99 masked), ``enc_output(_norm).<k>``, the 14-row
  ``enc_out_class_embed.<k>`` picks the top tokens (max over rows; as many as ``tgt_embed``
  has rows, 900), whose
  ``enc_out_bbox_embed.<k>`` boxes are the initial references; content queries are
  ``tgt_embed``; each decoder layer runs self-attention, deformable cross-attention, FFN, and
  refines the references with ``bbox_embed.<k>.<i>`` (inverse sigmoid clamped at 1e-3);
- outputs of layer ``i``: ``class_embed_.<k>.<i>`` logits and ``bbox_embed_.<k>.<i>`` deltas
  on the layer's input references (``class_embed.<k>`` is never used).

Computes in the dtype of the maps (float64 gives a reference whose own rounding is negligible).
"""
import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

StateDict = Dict[str, Tensor]
HEADS = 8           # nheads, of the deformable and the decoder self-attentions
POINTS = 4          # enc_n_points = dec_n_points
PE_TEMPERATURE = 20  # pe_temperatureH = pe_temperatureW
PROPOSAL_WH = 0.05   # two_stage default box size at level 0, doubled per level
REF_EPS = 1e-3       # util.misc.inverse_sigmoid


def _w(sd: StateDict, name: str, like: Tensor) -> Tensor:
    return sd[name].to(like.dtype)


def linear(x: Tensor, sd: StateDict, name: str) -> Tensor:
    return F.linear(x, _w(sd, name + '.weight', x), _w(sd, name + '.bias', x))


def layer_norm(x: Tensor, sd: StateDict, name: str) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], _w(sd, name + '.weight', x), _w(sd, name + '.bias', x))


def mlp(x: Tensor, sd: StateDict, name: str, num_layers: int) -> Tensor:
    """IDEA's MLP: ``layers.j`` Linear, ReLU between them."""
    for j in range(num_layers):
        x = linear(x, sd, f'{name}.layers.{j}')
        if j < num_layers - 1:
            x = F.relu(x)
    return x


def inverse_sigmoid(x: Tensor, eps: float = REF_EPS) -> Tensor:
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def sine_positions(B: int, H: int, W: int, like: Tensor) -> Tensor:
    """PositionEmbeddingSineHW(128, 20, 20, normalize=True) of an unpadded map: (B, 256, H, W)."""
    y = torch.arange(1, H + 1, dtype=torch.float32)[:, None].expand(H, W)
    x = torch.arange(1, W + 1, dtype=torch.float32)[None, :].expand(H, W)
    y = y / (H + 1e-6) * 2 * math.pi
    x = x / (W + 1e-6) * 2 * math.pi
    dim = PE_TEMPERATURE**(2 * (torch.arange(128) // 2) / 128)

    def encode(v):
        v = v[..., None] / dim
        return torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()), -1).flatten(-2)

    pos = torch.cat((encode(y), encode(x)), -1).permute(2, 0, 1)
    return pos[None].expand(B, -1, -1, -1).to(like.dtype)


def box_sine_embedding(boxes: Tensor) -> Tensor:
    """gen_sineembed_for_position of (B, Q, 4) cxcywh boxes: (B, Q, 512), order y, x, w, h."""
    dim = 10000**(2 * (torch.arange(128, device=boxes.device) // 2) / 128)
    parts = []
    for c in (1, 0, 2, 3):
        v = boxes[..., c, None] * 2 * math.pi / dim
        parts.append(torch.stack((v[..., 0::2].sin(), v[..., 1::2].cos()), -1).flatten(-2))
    return torch.cat(parts, -1)


def deformable_attention(sd: StateDict, name: str, query: Tensor, refs: Tensor, values: Tensor,
                         shapes: List[Tuple[int, int]]) -> Tensor:
    """MSDeformAttn: ``query`` (B, Q, C), ``refs`` (B, Q, 2) points or (B, Q, 4) boxes in
    [0, 1] (the same on every level: no padding), ``values`` (B, N, C) of the levels in
    ``shapes``; bilinear sampling of zero-padded maps, pixel centres at (i + 0.5) / size."""
    B, Q, C = query.shape
    L = len(shapes)
    v = linear(values, sd, f'{name}.value_proj').view(B, -1, HEADS, C // HEADS)
    offsets = linear(query, sd, f'{name}.sampling_offsets').view(B, Q, HEADS, L, POINTS, 2)
    weights = linear(query, sd, f'{name}.attention_weights').view(B, Q, HEADS, L * POINTS)
    weights = weights.softmax(-1).view(B, Q, HEADS, L, POINTS)
    if refs.shape[-1] == 2:
        size = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype)  # (L, 2): x, y
        locs = refs[:, :, None, None, None, :] + offsets / size[None, None, None, :, None, :]
    else:
        locs = (refs[:, :, None, None, None, :2]
                + offsets / POINTS * refs[:, :, None, None, None, 2:] * 0.5)
    out = query.new_zeros(B, HEADS, C // HEADS, Q)
    start = 0
    for lvl, (h, w) in enumerate(shapes):
        maps = v[:, start:start + h * w].permute(0, 2, 3, 1).reshape(B * HEADS, C // HEADS, h, w)
        start += h * w
        grid = (2 * locs[:, :, :, lvl] - 1).transpose(1, 2).reshape(B * HEADS, Q, POINTS, 2)
        sampled = F.grid_sample(maps, grid, mode='bilinear', padding_mode='zeros',
                                align_corners=False)  # (B*heads, C/heads, Q, points)
        w_lvl = weights[:, :, :, lvl].transpose(1, 2).reshape(B * HEADS, 1, Q, POINTS)
        out += (sampled * w_lvl).sum(-1).view(B, HEADS, C // HEADS, Q)
    return linear(out.reshape(B, C, Q).transpose(1, 2), sd, f'{name}.output_proj')


def self_attention(sd: StateDict, name: str, qk: Tensor, v: Tensor) -> Tensor:
    """nn.MultiheadAttention(256, 8) with ``q = k = qk``, values ``v`` (B, Q, C)."""
    B, Q, C = qk.shape
    w, b = _w(sd, f'{name}.in_proj_weight', qk), _w(sd, f'{name}.in_proj_bias', qk)
    q = F.linear(qk, w[:C], b[:C]).view(B, Q, HEADS, -1).transpose(1, 2)
    k = F.linear(qk, w[C:2 * C], b[C:2 * C]).view(B, Q, HEADS, -1).transpose(1, 2)
    val = F.linear(v, w[2 * C:], b[2 * C:]).view(B, Q, HEADS, -1).transpose(1, 2)
    attn = (q @ k.transpose(-2, -1) / math.sqrt(C // HEADS)).softmax(-1)
    return linear((attn @ val).transpose(1, 2).reshape(B, Q, C), sd, f'{name}.out_proj')


def fx_dino_encode(sd: StateDict, maps: List[Tensor]) -> dict:
    """The shared part: input projection, positions and encoder.

    Args:
        sd (dict[str, Tensor]): One copy of the authors' checkpoint (their key names).
        maps (list[Tensor]): The loc path's backbone maps (B, C_i, H_i, W_i), strides 8-32.

    Returns:
        dict: ``memory`` (B, N_tokens, 256), ``pos`` (the same shape), ``shapes`` [(H_l, W_l)].
    """

    def input_proj(lvl, x, **conv):
        p = f'input_proj.{lvl}.'
        y = F.conv2d(x, _w(sd, p + '0.weight', x), _w(sd, p + '0.bias', x), **conv)
        return F.group_norm(y, 32, _w(sd, p + '1.weight', x), _w(sd, p + '1.bias', x))

    levels = [input_proj(lvl, x) for lvl, x in enumerate(maps)]
    while f'input_proj.{len(levels)}.0.weight' in sd:  # extra levels: on the last map first
        src = maps[-1] if len(levels) == len(maps) else levels[-1]
        levels.append(input_proj(len(levels), src, stride=2, padding=1))
    B = maps[0].shape[0]
    shapes = [tuple(x.shape[-2:]) for x in levels]
    src = torch.cat([x.flatten(2).transpose(1, 2) for x in levels], 1)
    level_embed = _w(sd, 'transformer.level_embed', src)
    pos = torch.cat([sine_positions(B, h, w, src).flatten(2).transpose(1, 2) + level_embed[lvl]
                     for lvl, (h, w) in enumerate(shapes)], 1)
    # token centres, normalised (the encoder's reference points)
    refs = torch.cat([torch.stack(torch.meshgrid(
        (torch.arange(w, dtype=src.dtype) + 0.5) / w, (torch.arange(h, dtype=src.dtype) + 0.5) / h,
        indexing='xy'), -1).reshape(-1, 2) for h, w in shapes])[None].expand(B, -1, -1)
    i = 0
    while f'transformer.encoder.layers.{i}.norm1.weight' in sd:
        p = f'transformer.encoder.layers.{i}.'
        src = layer_norm(src + deformable_attention(sd, p + 'self_attn', src + pos, refs, src,
                                                    shapes), sd, p + 'norm1')
        src = layer_norm(src + linear(F.relu(linear(src, sd, p + 'linear1')), sd, p + 'linear2'),
                         sd, p + 'norm2')
        i += 1
    return dict(memory=src, pos=pos, shapes=shapes)


def proposals(shapes: List[Tuple[int, int]], like: Tensor) -> Tuple[Tensor, Tensor]:
    """gen_encoder_output_proposals without padding: (N_tokens, 4) logits of the level boxes,
    +inf where a box leaves 0.01-0.99, and that validity (N_tokens,)."""
    boxes = []
    for lvl, (h, w) in enumerate(shapes):
        cx, cy = torch.meshgrid((torch.arange(w, dtype=like.dtype) + 0.5) / w,
                                (torch.arange(h, dtype=like.dtype) + 0.5) / h, indexing='xy')
        wh = torch.full_like(cx, PROPOSAL_WH * 2.0**lvl)
        boxes.append(torch.stack([cx, cy, wh, wh], -1).reshape(-1, 4))
    boxes = torch.cat(boxes)
    valid = ((boxes > 0.01) & (boxes < 0.99)).all(-1)
    logits = torch.log(boxes / (1 - boxes)).masked_fill(~valid[:, None], float('inf'))
    return logits, valid


def fx_dino_decode(sd: StateDict, encoded: dict, k: int) -> Tuple[Tensor, Tensor]:
    """Decoder ``k`` on :func:`fx_dino_encode`'s output.

    Returns:
        tuple[Tensor, Tensor]: per decoder layer, the class logits (num_layers, B, 900, rows)
        and boxes (num_layers, B, 900, 4), normalised cxcywh, in the order of the two-stage
        selection (descending best row score).
    """
    memory = linear(encoded['memory'], sd, f'transformer.enc_outputMem_LinearProjection.{k}')
    pos, shapes = encoded['pos'], encoded['shapes']
    B, _, C = memory.shape
    prop, valid = proposals(shapes, memory)
    token = memory.masked_fill(~valid[None, :, None], 0.)
    token = layer_norm(linear(token, sd, f'transformer.enc_output.{k}'), sd,
                       f'transformer.enc_output_norm.{k}')
    scores = linear(token, sd, f'transformer.enc_out_class_embed.{k}').max(-1)[0]
    boxes = mlp(token, sd, f'transformer.enc_out_bbox_embed.{k}', 3) + prop
    tgt = _w(sd, 'transformer.tgt_embed.weight', memory)[None].expand(B, -1, -1)
    top = scores.topk(tgt.shape[1], dim=1)[1]
    refs = torch.gather(boxes, 1, top[..., None].expand(-1, -1, 4)).sigmoid()
    dec = f'transformer.decoder.{k}.'
    logits, coords = [], []
    i = 0
    while f'{dec}layers.{i}.norm1.weight' in sd:
        p = f'{dec}layers.{i}.'
        query_pos = mlp(box_sine_embedding(refs), sd, dec + 'ref_point_head', 2)
        tgt = layer_norm(tgt + self_attention(sd, p + 'self_attn', tgt + query_pos, tgt), sd,
                         p + 'norm2')
        tgt = layer_norm(tgt + deformable_attention(sd, p + 'cross_attn', tgt + query_pos, refs,
                                                    memory, shapes), sd, p + 'norm1')
        tgt = layer_norm(tgt + linear(F.relu(linear(tgt, sd, p + 'linear1')), sd, p + 'linear2'),
                         sd, p + 'norm3')
        hidden = layer_norm(tgt, sd, dec + 'norm')
        logits.append(linear(hidden, sd, f'class_embed_.{k}.{i}'))
        coords.append((mlp(hidden, sd, f'bbox_embed_.{k}.{i}', 3) + inverse_sigmoid(refs))
                      .sigmoid())
        refs = (mlp(tgt, sd, f'bbox_embed.{k}.{i}', 3) + inverse_sigmoid(refs)).sigmoid()
        i += 1
    return torch.stack(logits), torch.stack(coords)
