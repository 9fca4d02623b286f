"""Inference API: run a Foundation X model on chest X-ray files."""
from .inferencer import FXInferencer

__all__ = ['FXInferencer']
