# The phantom twin of configs/finetune/fx-ft_swin-b_<dataset>-seg_lock-release.py (VinDr-CXR
# organs, JSRT, Montgomery, VinDr-RibCXR): phantom heart and lungs segmentation, lock-then-release
# fine-tuning, from the demo model.
_base_ = './_base_/fx-finetune_demo.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['phantom-organs-seg']
custom_hooks = _base_.recipes['lock-release']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
