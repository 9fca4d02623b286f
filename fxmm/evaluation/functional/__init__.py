"""Metric functions on plain arrays: AUC (cls), COCO mAP (loc), Dice (seg)."""
from .cls_auc import CHEXPERT_COMPETITION_CLASSES, mean_auc
from .det_map import COCO_IOU_THRS, coco_map, map_name
from .seg_dice import dice_counts, dice_from_counts, dice_per_image, summarize_dice

__all__ = [
    'CHEXPERT_COMPETITION_CLASSES', 'mean_auc', 'COCO_IOU_THRS', 'coco_map', 'map_name',
    'dice_counts', 'dice_from_counts', 'dice_per_image', 'summarize_dice'
]
