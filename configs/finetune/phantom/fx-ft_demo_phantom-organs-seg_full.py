# The phantom twin of configs/finetune/fx-ft_swin-b_<dataset>-seg_full.py (VinDr-CXR organs, JSRT,
# Montgomery, VinDr-RibCXR): phantom heart and lungs segmentation, full fine-tuning, from the demo
# model.
_base_ = './_base_/fx-finetune_demo.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['phantom-organs-seg']
custom_hooks = _base_.recipes['full']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
