"""Registered data samplers."""
from .multi_task_sampler import MultiTaskSampler, VisitInfo

__all__ = ['MultiTaskSampler', 'VisitInfo']
