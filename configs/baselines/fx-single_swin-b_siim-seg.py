# Single-task baseline: SIIM-ACR pneumothorax segmentation alone.
# Paper: Dice 81.92; Foundation X 83.65.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['siim.seg']
