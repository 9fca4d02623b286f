# Single-task baseline: VinDr-CXR classification alone.
# Paper: AUC 95.07; Foundation X 95.85.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['vindr_cxr.cls']
