"""Drawing chest X-rays with boxes, masks and findings."""
from .drawing import draw_cxr, draw_data_sample, to_rgb_uint8

__all__ = ['draw_cxr', 'draw_data_sample', 'to_rgb_uint8']
