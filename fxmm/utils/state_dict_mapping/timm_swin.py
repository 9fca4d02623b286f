"""The Swin mapping between timm's layout (the Ark checkpoints, and the Swin of the authors'
Foundation X code) and mmpretrain's ``SwinTransformer``, shared by three converters: see
:func:`timm_swin_to_mmpretrain`.
"""
import re
from collections import OrderedDict
from typing import List, Optional, Sequence

from torch import Tensor, nn

from .key_rules import ConversionError, KeyMapper, KeyRule, MappedStateDict, StateDict

# timm concatenates the 2x2 neighbours of patch merging as (x0, x1, x2, x3) = offsets
# (dy, dx) (0,0), (1,0), (0,1), (1,1), channel blocks of C; mmpretrain's nn.Unfold orders the
# 4C inputs channel-major, offsets (0,0), (0,1), (1,0), (1,1) within each channel.
_MERGE_ORDER = [0, 2, 1, 3]  # its own inverse


def merge_weight_timm_to_unfold(weight: Tensor) -> Tensor:
    """Permute a patch-merging ``reduction.weight`` (out, 4C) from timm's input order to
    mmpretrain's (``nn.Unfold``)."""
    out, in4 = weight.shape
    return weight.reshape(out, 4, in4 // 4)[:, _MERGE_ORDER].transpose(1, 2).reshape(out, in4)


def merge_weight_unfold_to_timm(weight: Tensor) -> Tensor:
    """Inverse of :func:`merge_weight_timm_to_unfold`."""
    out, in4 = weight.shape
    return weight.reshape(out, in4 // 4, 4)[:, :, _MERGE_ORDER].transpose(1, 2).reshape(out, in4)


def merge_norm_timm_to_unfold(vector: Tensor) -> Tensor:
    """Permute a patch-merging ``norm`` weight/bias (4C,) from timm's order to mmpretrain's."""
    return vector.reshape(4, -1)[_MERGE_ORDER].t().reshape(-1)


def merge_norm_unfold_to_timm(vector: Tensor) -> Tensor:
    """Inverse of :func:`merge_norm_timm_to_unfold`."""
    return vector.reshape(-1, 4)[:, _MERGE_ORDER].t().reshape(-1)


def swin_rules(src_prefix: str = '', dst_prefix: str = '') -> List[KeyRule]:
    """Rules from timm's Swin (<= 0.6 layout: patch merging at the end of ``layers.i``) to
    mmpretrain's ``SwinTransformer``, stage norms excluded (the caller maps ``norm``).

    The same layout is used by the Swin of the official detection code that the authors'
    Foundation X code copies (``backbone.0.`` there).

    Args:
        src_prefix (str): Prefix of the source keys, e.g. ``'backbone.0.'``.
        dst_prefix (str): Prefix of the target keys, e.g. ``'backbone.'``.

    Returns:
        list[KeyRule]: The rules.
    """
    s, d = src_prefix, dst_prefix
    block, stage = s + 'layers.{i}.blocks.{j}.', d + 'stages.{i}.blocks.{j}.'
    return [
        KeyRule(s + 'patch_embed.proj.{p}', d + 'patch_embed.projection.{p}'),
        KeyRule(s + 'patch_embed.norm.{p}', d + 'patch_embed.norm.{p}'),
        KeyRule(block + 'norm1.{p}', stage + 'norm1.{p}'),
        KeyRule(block + 'norm2.{p}', stage + 'norm2.{p}'),
        KeyRule(block + 'attn.qkv.{p}', stage + 'attn.w_msa.qkv.{p}'),
        KeyRule(block + 'attn.proj.{p}', stage + 'attn.w_msa.proj.{p}'),
        KeyRule(block + 'attn.relative_position_bias_table',
                stage + 'attn.w_msa.relative_position_bias_table'),
        KeyRule(block + 'attn.relative_position_index',
                stage + 'attn.w_msa.relative_position_index'),
        KeyRule(block + 'mlp.fc1.{p}', stage + 'ffn.layers.0.0.{p}'),
        KeyRule(block + 'mlp.fc2.{p}', stage + 'ffn.layers.1.{p}'),
        KeyRule(s + 'layers.{i}.downsample.reduction.weight',
                d + 'stages.{i}.downsample.reduction.weight',
                merge_weight_timm_to_unfold, merge_weight_unfold_to_timm),
        KeyRule(s + 'layers.{i}.downsample.norm.{p}', d + 'stages.{i}.downsample.norm.{p}',
                merge_norm_timm_to_unfold, merge_norm_unfold_to_timm),
        KeyRule(block + 'attn_mask', None, why='shifted-window masks (the model computes them)'),
    ]


def swin_num_stages(state_dict: StateDict, src_prefix: str = '') -> int:
    """The number of stages (``layers.i``) of a timm-layout Swin state dict."""
    regex = re.compile(re.escape(src_prefix) + r'layers\.(\d+)\.')
    stages = {int(m.group(1)) for k in state_dict for m in [regex.match(k)] if m}
    if not stages:
        raise ConversionError(f'no Swin stages ({src_prefix}layers.<i>.*) in the state dict')
    return max(stages) + 1


def timm_downsample_to_stage_end(state_dict: StateDict, src_prefix: str = '') -> StateDict:
    """Move patch merging of timm >= 0.9 (``layers.i.downsample`` at the start of stage i >= 1)
    to the end of stage i - 1, the layout of timm <= 0.6 and mmpretrain. Unchanged if the
    state dict already has the old layout."""
    regex = re.compile(re.escape(src_prefix) + r'layers\.(\d+)\.downsample\.(.+)')
    stages = {int(m.group(1)) for k in state_dict for m in [regex.fullmatch(k)] if m}
    if not stages or 0 in stages:
        return state_dict
    return OrderedDict(
        (f'{src_prefix}layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}' if m else k, v)
        for k, v in state_dict.items() for m in [regex.fullmatch(k)])


def timm_swin_to_mmpretrain(state_dict: StateDict,
                            src_prefix: str = '',
                            dst_prefix: str = '',
                            final_norm: Optional[str] = 'norm',
                            extra_rules: Sequence[KeyRule] = ()) -> MappedStateDict:
    """Convert a timm Swin (any version's layout) to mmpretrain's ``SwinTransformer`` keys.

    Differences handled: ``layers`` -> ``stages``; ``attn.*`` -> ``attn.w_msa.*``;
    ``mlp.fc1/fc2`` -> ``ffn.layers.0.0/1``; ``patch_embed.proj`` -> ``projection``; the
    patch-merging input order (timm concatenates the 2x2 neighbours, mmpretrain unfolds them:
    ``reduction.weight`` columns and ``norm`` entries are permuted); timm >= 0.9's patch
    merging at the start of the next stage; the final ``norm`` -> ``norm<last stage>``;
    ``attn_mask`` buffers are dropped. Keys of other modules (``head``, Ark's ``projector``)
    are returned as unused.

    Args:
        state_dict (dict[str, Tensor]): The timm-layout tensors.
        src_prefix (str): Prefix of the Swin keys in ``state_dict``. Defaults to ''.
        dst_prefix (str): Prefix of the mmpretrain keys written. Defaults to ''.
        final_norm (str, optional): Name (below ``src_prefix``) of the norm after the last
            stage, mapped to ``norm<last>``; None to leave it unmapped. Defaults to ``'norm'``.
        extra_rules (Sequence[KeyRule]): Rules for the other modules of the checkpoint (heads),
            applied in the same pass.

    Returns:
        MappedStateDict: The converted tensors and the left-over keys.
    """
    state_dict = timm_downsample_to_stage_end(state_dict, src_prefix)
    rules = swin_rules(src_prefix, dst_prefix)
    if final_norm is not None:
        last = swin_num_stages(state_dict, src_prefix) - 1
        rules.append(KeyRule(f'{src_prefix}{final_norm}.{{p}}', f'{dst_prefix}norm{last}.{{p}}'))
    return KeyMapper(rules + list(extra_rules)).convert(state_dict)


def mmpretrain_swin_to_timm(state_dict: StateDict, num_stages: int = 4) -> StateDict:
    """mmpretrain ``SwinTransformer`` keys -> timm <= 0.6 keys (``norm<last>`` -> ``norm``);
    the inverse of :func:`timm_swin_to_mmpretrain`. Other stage norms are left out."""
    rules = swin_rules() + [KeyRule('norm.{p}', f'norm{num_stages - 1}.{{p}}')]
    return KeyMapper(rules).inverse().convert(state_dict).state_dict


def infer_swin_arch(state_dict: StateDict, prefix: str = '') -> dict:
    """Read a Swin's size from its mmpretrain-layout tensors.

    Returns:
        dict: ``arch=dict(embed_dims, depths, num_heads)``, ``window_size``, ``patch_size``:
        the arguments of ``mmpretrain.SwinTransformer`` that size its parameters.
    """
    try:
        embed_dims, _, patch, _ = state_dict[prefix + 'patch_embed.projection.weight'].shape
    except KeyError as err:
        raise ConversionError(f'no {prefix}patch_embed.projection.weight: not a Swin') from err
    regex = re.compile(re.escape(prefix) + r'stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.'
                       r'relative_position_bias_table')
    blocks = {}
    for key, value in state_dict.items():
        m = regex.fullmatch(key)
        if m:
            blocks.setdefault(int(m.group(1)), {})[int(m.group(2))] = value.shape
    stages = sorted(blocks)
    depths = [len(blocks[i]) for i in stages]
    num_heads = [blocks[i][0][1] for i in stages]
    window = (int(round(blocks[stages[0]][0][0]**0.5)) + 1) // 2
    return dict(arch=dict(embed_dims=int(embed_dims), depths=depths, num_heads=num_heads),
                window_size=window, patch_size=int(patch))


def swin_pad_small_map(backbone: nn.Module) -> Optional[bool]:
    """The ``pad_small_map`` of an mmpretrain ``SwinTransformer`` (None for other backbones):
    True shifts the windows even where a stage map equals the window (as the detection Swin
    does), False does not (as timm and the classification Swin)."""
    stages = getattr(backbone, 'stages', None)
    if not stages:
        return None
    return getattr(stages[-1].blocks[0].attn, 'pad_small_map', None)
