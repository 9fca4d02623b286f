"""Let mmcv's CUDA multi-scale deformable attention run under bfloat16 autocast.

mmcv 2.1's ``ms_deform_attn_forward_cuda`` is compiled for float32, float64 and float16 only:
under ``torch.autocast(dtype=torch.bfloat16)`` (``--amp`` with ``dtype='bfloat16'``) DINO's
``value`` arrives in bfloat16 and the op raises ``NotImplementedError: "ms_deform_attn_forward_cuda"
not implemented for 'BFloat16'`` (seen on an H100). fxmm runs that op in float32 for bfloat16
inputs and casts the output back, so autocast keeps working around it; float16 and float32
inputs go to mmcv unchanged. The CPU path (mmcv's PyTorch implementation) never uses the op.
"""
from typing import Callable

import torch
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction


def float32_for_bfloat16(apply: Callable) -> Callable:
    """Wrap ``MultiScaleDeformableAttnFunction.apply`` to run bfloat16 ``value`` in float32.

    Args:
        apply (Callable): ``apply(value (B, num_keys, heads, C), spatial_shapes (L, 2),
            level_start_index (L,), sampling_locations (B, Q, heads, L, P, 2),
            attention_weights (B, Q, heads, L, P), im2col_step) -> (B, Q, heads * C)``.

    Returns:
        Callable: the same signature; a bfloat16 ``value`` is computed in float32 and the
        output returned in bfloat16 (the casts are differentiable).
    """

    def apply_float32_for_bfloat16(value: torch.Tensor, *args):
        if value.dtype != torch.bfloat16:
            return apply(value, *args)
        return apply(value.float(), *args).to(torch.bfloat16)

    apply_float32_for_bfloat16.wrapped = apply
    return apply_float32_for_bfloat16


def allow_bfloat16_deformable_attention() -> None:
    """Install :func:`float32_for_bfloat16` on mmcv's function once (idempotent)."""
    apply = MultiScaleDeformableAttnFunction.apply
    if not hasattr(apply, 'wrapped'):
        MultiScaleDeformableAttnFunction.apply = staticmethod(float32_for_bfloat16(apply))
