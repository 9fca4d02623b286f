# Single-task baseline: RSNA Pneumonia localisation alone.
# Paper: mAP40 20.83; Foundation X 27.44.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['rsna_pneumonia.loc']
