# Single-task baseline: NODE21 nodule localisation alone.
# Paper: mAP40 37.78; Foundation X 46.57.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['node21.loc']
