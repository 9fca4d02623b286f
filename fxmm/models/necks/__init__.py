"""Shared necks."""
from .shared_upernet import SharedUperNet

__all__ = ['SharedUperNet']
