"""Datasets, samplers and transforms for chest X-rays."""
from .bad_image_policy import BadImageLimitError, BadImagePolicy
from .cxr_dataset import ANNOTATION_VERSION, CXRDataset
from .few_shot import few_shot_indices
from .image_io import CXRImageError, read_cxr_image
from .label_policies import apply_label_policy
from .multi_task_dataset import MultiTaskDataset
from .sample_rng import SeededIndex, current_sample_rng, sample_rng
from .samplers import MultiTaskSampler, VisitInfo
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BadImageLimitError', 'BadImagePolicy', 'few_shot_indices',
    'ANNOTATION_VERSION', 'CXRDataset', 'CXRImageError', 'read_cxr_image', 'apply_label_policy',
    'MultiTaskDataset', 'MultiTaskSampler', 'VisitInfo', 'SeededIndex', 'current_sample_rng',
    'sample_rng'
]
