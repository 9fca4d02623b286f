# Single-task baseline: CANDID-PTX pneumothorax localisation alone.
# Paper: mAP40 50.51; Foundation X 54.14.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['candid_ptx.loc']
