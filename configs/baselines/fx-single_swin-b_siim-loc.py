# Single-task baseline: SIIM-ACR pneumothorax localisation alone.
# Paper: mAP40 28.56; Foundation X 34.59.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['siim.loc']
