"""Registered data transforms: loading, CXR-aware geometry, packing."""
from .flip import CXRRandomFlip
from .formatting import PackCXRInputs
from .geometric import CXRRandomResizedCrop, CXRRandomRotate, CXRResize
from .loading import LoadCXRImage
from .loading_annotations import LoadCXRAnnotations

__all__ = [
    'CXRRandomFlip', 'PackCXRInputs', 'CXRRandomResizedCrop', 'CXRRandomRotate', 'CXRResize',
    'LoadCXRImage', 'LoadCXRAnnotations'
]
