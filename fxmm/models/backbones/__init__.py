"""Backbone helpers: mmpretrain's Swin with gradient checkpointing that works under DDP, and
with one set of output norms per task."""
from .swin_checkpoint import NonReentrantSwinBlock, use_non_reentrant_checkpoint
from .task_norm_swin import TaskNormSwinTransformer

__all__ = ['NonReentrantSwinBlock', 'TaskNormSwinTransformer', 'use_non_reentrant_checkpoint']
