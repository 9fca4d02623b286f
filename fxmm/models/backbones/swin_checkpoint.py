"""Gradient checkpointing of mmpretrain's Swin blocks that works under DDP.

mmpretrain 1.2.0's ``SwinBlock`` checkpoints with ``torch.utils.checkpoint.checkpoint`` in
its default, reentrant mode. DDP with ``find_unused_parameters=True`` (which fxmm needs: only
one task path runs per step) rejects that at the first backward ("marked as ready twice").
The non-reentrant mode works; :func:`use_non_reentrant_checkpoint` switches every Swin block
of a model to it, keeping the modules, so the state dict keys stay mmpretrain's.
"""
import torch.utils.checkpoint as cp
from mmpretrain.models.backbones.swin_transformer import SwinBlock
from torch import Tensor, nn


class NonReentrantSwinBlock(SwinBlock):
    """mmpretrain's :class:`SwinBlock` whose ``with_cp`` uses non-reentrant checkpointing.

    The block's forward is recomputed in backward (with the RNG state of the forward, so
    drop path draws the same paths); parameters and buffers are those of ``SwinBlock``.
    Made from a built block by :func:`use_non_reentrant_checkpoint`, not built directly.
    """

    def _inner_forward(self, x: Tensor, hw_shape) -> Tensor:
        """``SwinBlock.forward`` without checkpointing, x (B, H*W, C) -> (B, H*W, C)."""
        identity = x
        x = self.attn(self.norm1(x), hw_shape) + identity
        return self.ffn(self.norm2(x), identity=x)

    def forward(self, x: Tensor, hw_shape) -> Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._inner_forward, x, hw_shape, use_reentrant=False)
        return self._inner_forward(x, hw_shape)


def use_non_reentrant_checkpoint(model: nn.Module) -> int:
    """Make every mmpretrain ``SwinBlock`` of ``model`` a :class:`NonReentrantSwinBlock`,
    in place (the class of the module changes; its parameters, buffers and state dict keys do
    not). Blocks without ``with_cp`` behave exactly as before.

    Args:
        model (nn.Module): e.g. a ``mmpretrain.SwinTransformer`` backbone.

    Returns:
        int: the number of blocks changed.
    """
    blocks = [m for m in model.modules() if type(m) is SwinBlock]
    for block in blocks:
        block.__class__ = NonReentrantSwinBlock
    return len(blocks)
