"""Data preprocessors."""
from .cxr_data_preprocessor import CXRDataPreprocessor

__all__ = ['CXRDataPreprocessor']
