# Single-task baseline: CheXpert classification alone.
# Paper: AUC 90.03; Foundation X 90.64.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['chexpert.cls']
