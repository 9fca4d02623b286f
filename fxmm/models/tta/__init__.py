"""Test-time augmentation wrappers (mmengine ``BaseTTAModel`` pattern)."""
from .ten_crop import FIVE_CROPS, TenCropTTA

__all__ = ['FIVE_CROPS', 'TenCropTTA']
