"""mmcv's deformable attention op under bfloat16 autocast (no bf16 CUDA kernel in mmcv 2.1)."""
import torch
from mmcv.ops.multi_scale_deform_attn import (MultiScaleDeformableAttnFunction,
                                              multi_scale_deformable_attn_pytorch)

import fxmm.models  # noqa: F401  installs the wrapper with SharedDINO
from fxmm.utils.mmcv_compat import float32_for_bfloat16


def _inputs(dtype):
    torch.manual_seed(0)
    shapes = torch.tensor([[4, 4], [2, 2]])
    starts = torch.tensor([0, 16])
    value = torch.randn(1, 20, 2, 4, dtype=dtype, requires_grad=True)
    loc = torch.rand(1, 3, 2, 2, 2, 2)
    weights = torch.rand(1, 3, 2, 2, 2).softmax(-1)
    return value, shapes, starts, loc, weights, 64


def _reference_op(seen_dtypes):
    """Stands in for the CUDA op on CPU: float32/float16 only, records what it was given."""

    def op(value, shapes, starts, loc, weights, im2col_step):
        seen_dtypes.append(value.dtype)
        if value.dtype == torch.bfloat16:
            raise NotImplementedError("ms_deform_attn_forward_cuda not implemented for 'BFloat16'")
        return multi_scale_deformable_attn_pytorch(value, shapes, loc.type_as(value),
                                                   weights.type_as(value))

    return op


def test_bfloat16_value_runs_in_float32_and_comes_back_bfloat16():
    seen = []
    apply = float32_for_bfloat16(_reference_op(seen))
    value, *rest = _inputs(torch.bfloat16)
    out = apply(value, *rest)
    assert seen == [torch.float32]
    assert out.dtype == torch.bfloat16 and out.shape == (1, 3, 8)
    expected = multi_scale_deformable_attn_pytorch(value.float(), rest[0], rest[2], rest[3])
    torch.testing.assert_close(out.float(), expected, atol=1e-2, rtol=1e-2)
    out.float().sum().backward()  # the casts are differentiable
    assert value.grad is not None and value.grad.dtype == torch.bfloat16
    assert value.grad.abs().sum() > 0


def test_other_dtypes_reach_the_op_unchanged():
    seen = []
    apply = float32_for_bfloat16(_reference_op(seen))
    for dtype in (torch.float32, torch.float16):
        value, *rest = _inputs(dtype)
        assert apply(value, *rest).dtype == dtype
    assert seen == [torch.float32, torch.float16]


def test_wrapper_is_installed_once_on_mmcv():
    apply = MultiScaleDeformableAttnFunction.apply
    assert callable(getattr(apply, 'wrapped', None))
    assert not hasattr(apply.wrapped, 'wrapped')  # not wrapped twice
