"""Evaluation: AUC / COCO mAP / Dice per (dataset, task) and the paper-style table."""
from .functional import coco_map, dice_per_image, mean_auc, summarize_dice
from .metrics import MultiTaskMetric
from .results_table import results_table, save_results

__all__ = [
    'coco_map', 'dice_per_image', 'mean_auc', 'summarize_dice', 'MultiTaskMetric',
    'results_table', 'save_results'
]
