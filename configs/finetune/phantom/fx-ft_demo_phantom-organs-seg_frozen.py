# The phantom twin of configs/finetune/fx-ft_swin-b_<dataset>-seg_frozen.py (VinDr-CXR organs,
# JSRT, Montgomery, VinDr-RibCXR): phantom heart and lungs segmentation, frozen backbone and shared
# neck, only the head trains, from the demo model.
_base_ = './_base_/fx-finetune_demo.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['phantom-organs-seg']
custom_hooks = _base_.recipes['frozen']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
