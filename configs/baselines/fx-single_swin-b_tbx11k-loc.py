# Single-task baseline: TBX11K tuberculosis localisation alone.
# Paper: mAP40 78.08; Foundation X 81.80.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['tbx11k.loc']
