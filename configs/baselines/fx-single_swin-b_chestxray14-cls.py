# Single-task baseline: ChestX-ray14 (NIH-14) classification alone.
# Paper: AUC 83.05; Foundation X 83.35.
_base_ = './_base_/fx-single_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['chestxray14.cls']
