# Montgomery County lung segmentation: full fine-tuning, from the pretrained Foundation X. Paper
# (method.md section 3): Dice 98.29. The paper does not say which recipe gave them;
# docs/transfer.md compares the recipes.
_base_ = './_base_/fx-finetune_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['montgomery-seg']
custom_hooks = _base_.recipes['full']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
