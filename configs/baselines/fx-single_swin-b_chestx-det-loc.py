# Single-task baseline: ChestX-Det localisation alone.
# Paper: mAP40 38.12; Foundation X 43.98.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['chestx_det.loc']
