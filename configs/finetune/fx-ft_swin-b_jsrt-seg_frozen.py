# JSRT segmentation of heart, lungs and clavicles (SCR masks): frozen backbone and shared neck,
# only the head trains, from the pretrained Foundation X. Paper (method.md section 3): Dice heart
# 95.42, lungs 98.04, clavicles 91.17. The paper does not say which recipe gave them;
# docs/transfer.md compares the recipes.
_base_ = './_base_/fx-finetune_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['jsrt-seg']
custom_hooks = _base_.recipes['frozen']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
