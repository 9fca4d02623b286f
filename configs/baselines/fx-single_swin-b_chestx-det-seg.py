# Single-task baseline: ChestX-Det segmentation alone.
# Paper: Dice 79.33; Foundation X 79.17.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['chestx_det.seg']
