"""The API of fxmm for users and tools: inference on chest X-ray files, building an fxmm model
from a config and loading a checkpoint into it, and exporting it to mmpretrain/mmdet/mmseg."""
from .export import add_export_args, check_export, image_preprocessor_cfg, save_export
from .inferencer import IMAGE_SUFFIXES, FXInferencer
from .model_setup import (build_in_scope, find_test_transforms, foundation_x_cfg,
                          fxmm_state_dict, load_fxmm_checkpoint, load_fxmm_model)
from .overlay import draw_overlay
from .predictions_csv import CSV_FIELDS, predictions_to_csv

__all__ = ['FXInferencer', 'draw_overlay', 'find_test_transforms', 'predictions_to_csv',
           'CSV_FIELDS', 'IMAGE_SUFFIXES', 'add_export_args', 'build_in_scope',
           'check_export', 'foundation_x_cfg', 'fxmm_state_dict', 'image_preprocessor_cfg',
           'load_fxmm_checkpoint', 'load_fxmm_model', 'save_export']
