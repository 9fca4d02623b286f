# Single-task baseline: Shenzhen tuberculosis classification alone.
# Paper: AUC 98.99; Foundation X 99.64.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['shenzhen.cls']
