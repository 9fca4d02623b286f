# Single-task baseline: CANDID-PTX pneumothorax segmentation alone.
# Paper: Dice 86.36; Foundation X 89.81.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['candid_ptx.seg']
