# Single-task baseline: MIMIC-CXR classification alone.
# Paper: AUC 79.12; Foundation X 78.94.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['mimic_cxr.cls']
