"""Reference forwards of the authors' models in plain torch, on their own state dicts.

An implementation independent of fxmm (no fxmm, mmpretrain, mmseg or mmcv code), written from
reading the authors' code, to compare fxmm's converted models with:

- the Swin: the detection Swin of jlianglab/Foundation_X (``models/dino/
  swin_transformer_CyclicSegmentation.py``: patch embedding + LayerNorm, window attention with
  relative position bias, cyclic shift with the region mask on every odd block - also where a
  stage map equals the window -, patch merging of the 2x2 neighbours (0,0), (1,0), (0,1),
  (1,1)); with ``shift_small_maps=False`` timm 0.5.4's, which Ark uses (no shift, and the
  window shrunk to the map, where a map is no larger than the window);
- Foundation X's cls path (``extra_features``: ``norm`` on the stage-4 tokens, mean over
  tokens, ``classification_heads.<k>``), seg path (``extra_features_seg``: the raw stage
  outputs, ``PSPModule`` on stage 4, ``FPN_fuse``, ``segmentation_heads.<k>``, bilinear to the
  input size) and the loc path's backbone maps (``forward``: ``Locnorm<i>`` on stages 2-4);
- Ark (jlianglab/Ark ``models.py`` ``ArkSwinTransformer``: timm's ``forward_features`` -
  ``norm``, mean over tokens -, the projector, ``omni_heads.<k>``).

Every function takes the authors' state dict (their key names) and images (B, 3, H, W) and
computes in the images' dtype (float64 gives a reference whose own rounding is negligible).
"""
import re
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

StateDict = Dict[str, Tensor]


def _get(sd: StateDict, name: str, like: Tensor) -> Tensor:
    return sd[name].to(like.dtype)


def layer_norm(x: Tensor, sd: StateDict, name: str) -> Tensor:
    """LayerNorm over the last dim with ``<name>.weight`` / ``.bias`` (eps 1e-5)."""
    return F.layer_norm(x, x.shape[-1:], _get(sd, name + '.weight', x), _get(sd, name + '.bias', x))


def linear(x: Tensor, sd: StateDict, name: str) -> Tensor:
    bias = sd.get(name + '.bias')
    return F.linear(x, _get(sd, name + '.weight', x), None if bias is None else bias.to(x.dtype))


def conv(x: Tensor, sd: StateDict, name: str, padding: int = 0) -> Tensor:
    bias = sd.get(name + '.bias')
    return F.conv2d(x, _get(sd, name + '.weight', x), None if bias is None else bias.to(x.dtype),
                    padding=padding)


def batch_norm(x: Tensor, sd: StateDict, name: str) -> Tensor:
    """BatchNorm2d in eval mode (running statistics, eps 1e-5)."""
    return F.batch_norm(x, _get(sd, name + '.running_mean', x), _get(sd, name + '.running_var', x),
                        _get(sd, name + '.weight', x), _get(sd, name + '.bias', x), False, 0., 1e-5)


def relative_position_index(w: int) -> Tensor:
    """The (w*w, w*w) index of a pair of window positions into the (2w-1)^2 bias table."""
    ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
    ys, xs = ys.flatten(), xs.flatten()
    return (ys[:, None] - ys[None] + w - 1) * (2 * w - 1) + (xs[:, None] - xs[None] + w - 1)


def window_partition(x: Tensor, w: int) -> Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w * w, C), windows in row-major order."""
    B, H, W, C = x.shape
    return x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)


def shift_mask(H: int, W: int, w: int, s: int) -> Tensor:
    """(num_windows, w*w, w*w): 0 within a region of the shifted map, -100 across regions."""
    regions = torch.zeros(1, H, W, 1)
    cuts = (slice(0, -w), slice(-w, -s), slice(-s, None))
    for n, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
        regions[:, hs, ws] = n
    ids = window_partition(regions, w).squeeze(-1)
    return torch.where(ids[:, None, :] == ids[:, :, None], 0., -100.)


def swin_block(sd: StateDict, p: str, x: Tensor, H: int, W: int, w: int, shift: int) -> Tensor:
    """One Swin block (pre-norm window attention + MLP) on tokens (B, H*W, C)."""
    B, L, C = x.shape
    table = sd[p + 'attn.relative_position_bias_table']
    heads = table.shape[1]
    y = layer_norm(x, sd, p + 'norm1').view(B, H, W, C)
    Hp, Wp = -(-H // w) * w, -(-W // w) * w  # padded to whole windows (detection Swin)
    y = F.pad(y, (0, 0, 0, Wp - W, 0, Hp - H))
    if shift:
        y = torch.roll(y, (-shift, -shift), (1, 2))
    y = window_partition(y, w)
    n, N, _ = y.shape
    q, k, v = linear(y, sd, p + 'attn.qkv').view(n, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (C // heads)**-0.5) @ k.transpose(-2, -1)
    bias = table.to(x.dtype)[relative_position_index(w).flatten()].view(N, N, heads)
    attn = attn + bias.permute(2, 0, 1)[None]
    if shift:
        mask = shift_mask(Hp, Wp, w, shift).to(x.dtype)
        attn = (attn.view(B, -1, heads, N, N) + mask[None, :, None]).view(n, heads, N, N)
    y = (attn.softmax(-1) @ v).transpose(1, 2).reshape(n, N, C)
    y = linear(y, sd, p + 'attn.proj')
    y = y.view(B, Hp // w, Wp // w, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
    if shift:
        y = torch.roll(y, (shift, shift), (1, 2))
    x = x + y[:, :H, :W].reshape(B, L, C)
    h = F.gelu(linear(layer_norm(x, sd, p + 'norm2'), sd, p + 'mlp.fc1'))
    return x + linear(h, sd, p + 'mlp.fc2')


def swin_stages(sd: StateDict, x: Tensor, prefix: str = '',
                shift_small_maps: bool = True) -> List[Tensor]:
    """The raw outputs of every Swin stage (before its patch merging, no output norm).

    Args:
        sd (dict[str, Tensor]): A timm <= 0.6 / detection-Swin layout (``layers.i.blocks.j``,
            ``layers.i.downsample`` at the end of stage i) under ``prefix``.
        x (Tensor): Images (B, 3, H, W), H and W multiples of the patch size.
        prefix (str): Key prefix of the Swin, e.g. ``'backbone.0.'``.
        shift_small_maps (bool): True: the detection Swin (maps padded to whole windows, every
            odd block shifted); False: timm 0.5.4 (where a map is no larger than the window,
            the window is the map and nothing shifts).

    Returns:
        list[Tensor]: (B, C_i, H_i, W_i) per stage.
    """
    window = (int(round(sd[prefix + 'layers.0.blocks.0.attn.relative_position_bias_table']
                        .shape[0]**0.5)) + 1) // 2
    proj = sd[prefix + 'patch_embed.proj.weight']
    x = F.conv2d(x, proj.to(x.dtype), _get(sd, prefix + 'patch_embed.proj.bias', x),
                 stride=proj.shape[-1])
    B, _, H, W = x.shape
    x = layer_norm(x.flatten(2).transpose(1, 2), sd, prefix + 'patch_embed.norm')
    blocks = re.compile(re.escape(prefix) + r'layers\.(\d+)\.blocks\.(\d+)\.norm1\.weight')
    depths = {}
    for key in sd:
        m = blocks.fullmatch(key)
        if m:
            depths[int(m.group(1))] = max(depths.get(int(m.group(1)), 0), int(m.group(2)) + 1)
    outs = []
    for i in range(len(depths)):
        w, may_shift = window, True
        if not shift_small_maps and min(H, W) <= window:
            w, may_shift = min(H, W), False
        for j in range(depths[i]):
            shift = window // 2 if j % 2 and may_shift else 0
            x = swin_block(sd, f'{prefix}layers.{i}.blocks.{j}.', x, H, W, w, shift)
        outs.append(x.transpose(1, 2).reshape(B, -1, H, W))
        p = f'{prefix}layers.{i}.downsample.'
        if p + 'reduction.weight' in sd:
            g = F.pad(x.view(B, H, W, -1), (0, 0, 0, W % 2, 0, H % 2))
            x = torch.cat([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]],
                          -1).flatten(1, 2)
            x = linear(layer_norm(x, sd, p + 'norm'), sd, p + 'reduction')
            H, W = (H + 1) // 2, (W + 1) // 2
    return outs


def _tokens(x: Tensor) -> Tensor:
    return x.flatten(2).transpose(1, 2)


def _heads(sd: StateDict, prefix: str) -> int:
    regex = re.compile(re.escape(prefix) + r'(\d+)\.weight')
    return len([k for k in sd if regex.fullmatch(k)])


# ------------------------------------------------------------------------------- Foundation X
FX_SWIN = 'backbone.0.'
PSP_BINS = (1, 2, 4, 6)  # PSPModule's bin_sizes (pooling has no parameters to read them from)


def fx_cls_logits(sd: StateDict, stages: List[Tensor]) -> List[Tensor]:
    """Logits (B, C_k) of every ``classification_heads.<k>``, from :func:`swin_stages`."""
    pooled = layer_norm(_tokens(stages[-1]), sd, FX_SWIN + 'norm').mean(1)
    return [linear(pooled, sd, f'{FX_SWIN}classification_heads.{k}')
            for k in range(_heads(sd, FX_SWIN + 'classification_heads.'))]


def fx_loc_maps(sd: StateDict, stages: List[Tensor]) -> List[Tensor]:
    """The loc path's backbone maps: ``Locnorm<i>`` on stage i for every i that has one,
    (B, C_i, H_i, W_i) in stage order (stages 2-4 of the release)."""
    out = []
    for i, x in enumerate(stages):
        if f'{FX_SWIN}Locnorm{i}.weight' in sd:
            y = layer_norm(_tokens(x), sd, f'{FX_SWIN}Locnorm{i}')
            out.append(y.transpose(1, 2).reshape(x.shape))
    return out


def _up(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[2:], mode='bilinear', align_corners=True)


def fx_seg_feature(sd: StateDict, stages: List[Tensor]) -> Tensor:
    """The shared seg decoder's output (B, 128, H/4, W/4): PSP on the raw stage 4, then the
    non-cascaded FPN and the fusion conv."""
    psp, fpn = FX_SWIN + 'segmentation_PPN.', FX_SWIN + 'segmentation_FPN.'
    top = stages[-1]
    pyramid = [top]
    for k, bins in enumerate(PSP_BINS):
        y = F.adaptive_avg_pool2d(top, bins)
        y = F.relu(batch_norm(conv(y, sd, f'{psp}stages.{k}.1'), sd, f'{psp}stages.{k}.2'))
        pyramid.append(_up(y, top))
    top = F.relu(batch_norm(conv(torch.cat(pyramid, 1), sd, psp + 'bottleneck.0', padding=1), sd,
                            psp + 'bottleneck.1'))
    feats = [stages[0]] + [conv(x, sd, f'{fpn}conv1x1.{i}')
                           for i, x in enumerate([*stages[1:-1], top])]
    levels = [conv(_up(feats[i + 1], feats[i]) + feats[i], sd, f'{fpn}smooth_conv.{i}', padding=1)
              for i in range(len(feats) - 1)]
    levels.append(feats[-1])
    fused = torch.cat([levels[0]] + [_up(x, levels[0]) for x in levels[1:]], 1)
    return F.relu(batch_norm(conv(fused, sd, fpn + 'conv_fusion.0', padding=1), sd,
                             fpn + 'conv_fusion.1'))


def fx_seg_logits(sd: StateDict, stages: List[Tensor], size) -> List[Tensor]:
    """Logits (B, K_k, H, W) of every ``segmentation_heads.<k>`` at the input ``size``."""
    feature = fx_seg_feature(sd, stages)
    return [F.interpolate(conv(feature, sd, f'{FX_SWIN}segmentation_heads.{k}', padding=1),
                          size=tuple(size), mode='bilinear', align_corners=False)
            for k in range(_heads(sd, FX_SWIN + 'segmentation_heads.'))]


# ------------------------------------------------------------------------------------- Ark
def ark_logits(sd: StateDict, x: Tensor) -> List[Tensor]:
    """Logits (B, C_k) of every ``omni_heads.<k>`` of an Ark state dict (flat, timm 0.5.4 Swin,
    a Linear or Linear-ReLU-Linear ``projector``)."""
    stages = swin_stages(sd, x, shift_small_maps=False)
    y = layer_norm(_tokens(stages[-1]), sd, 'norm').mean(1)
    if 'projector.weight' in sd:
        y = linear(y, sd, 'projector')
    elif 'projector.0.weight' in sd:
        y = linear(F.relu(linear(y, sd, 'projector.0')), sd, 'projector.2')
    return [linear(y, sd, f'omni_heads.{k}') for k in range(_heads(sd, 'omni_heads.'))]
