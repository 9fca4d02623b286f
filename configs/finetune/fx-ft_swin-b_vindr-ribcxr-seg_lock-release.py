# VinDr-RibCXR segmentation of the 20 ribs: lock-then-release fine-tuning (frozen, then everything
# trains), from the pretrained Foundation X. Paper (method.md section 3): Dice 71.12 (Ark-6:
# 63.96). The paper does not say which recipe gave them; docs/transfer.md compares the recipes.
_base_ = './_base_/fx-finetune_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['vindr-ribcxr-seg']
custom_hooks = _base_.recipes['lock-release']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
