# The phantom twin of configs/finetune/fx-ft_swin-b_vindr-organs-loc_full.py: phantom nodule and
# mass localisation, full fine-tuning, from the demo model.
_base_ = './_base_/fx-finetune_demo.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['phantom-lesions-loc']
custom_hooks = _base_.recipes['full']['loc']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
