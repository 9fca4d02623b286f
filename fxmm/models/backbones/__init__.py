"""Backbone helpers: mmpretrain's Swin with gradient checkpointing that works under DDP."""
from .swin_checkpoint import NonReentrantSwinBlock, use_non_reentrant_checkpoint

__all__ = ['NonReentrantSwinBlock', 'use_non_reentrant_checkpoint']
