"""Inference API: run a Foundation X model on chest X-ray files."""
from .inferencer import IMAGE_SUFFIXES, FXInferencer
from .model_setup import MODEL_COPIES, find_test_transforms, select_model_copy
from .overlay import draw_overlay
from .predictions_csv import CSV_FIELDS, predictions_to_csv

__all__ = ['FXInferencer', 'draw_overlay', 'find_test_transforms', 'predictions_to_csv',
           'select_model_copy', 'CSV_FIELDS', 'IMAGE_SUFFIXES', 'MODEL_COPIES']
