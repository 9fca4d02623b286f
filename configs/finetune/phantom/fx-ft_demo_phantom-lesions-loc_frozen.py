# The phantom twin of configs/finetune/fx-ft_swin-b_vindr-organs-loc_frozen.py: phantom nodule and
# mass localisation, frozen backbone and shared neck, only the head trains, from the demo model.
_base_ = './_base_/fx-finetune_demo.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['phantom-lesions-loc']
custom_hooks = _base_.recipes['frozen']['loc']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
