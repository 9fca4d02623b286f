"""Shared necks."""
from .psp_fpn_neck import PSPFPNNeck
from .shared_upernet import SharedUperNet

__all__ = ['PSPFPNNeck', 'SharedUperNet']
