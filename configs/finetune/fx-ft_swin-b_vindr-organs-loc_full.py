# VinDr-CXR organs (CheXmask heart, left and right lung) localisation: full fine-tuning, from the
# pretrained Foundation X. Paper (method.md section 3): mAP40 heart 88.41, left lung 95.58, right
# lung 96.78. The paper does not say which recipe gave them; docs/transfer.md compares the recipes.
_base_ = './_base_/fx-finetune_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['vindr-organs-loc']
custom_hooks = _base_.recipes['full']['loc']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
