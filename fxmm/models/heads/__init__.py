"""Per-dataset task heads."""
from .multi_cls_head import MultiDatasetClsHead
from .multi_seg_head import MultiDatasetSegHead

__all__ = ['MultiDatasetClsHead', 'MultiDatasetSegHead']
