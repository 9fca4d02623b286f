# The phantom twin of configs/finetune/fx-ft_swin-b_jsrt-seg-fewshot_full.py: full fine-tuning
# of the demo model on `num_shots` (3) phantom training images; the seed of the subset:
#   --cfg-options train_dataloader.dataset.pairs.0.dataset.subset_seed=1
_base_ = './_base_/fx-finetune_demo.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets[
    'phantom-organs-seg-fewshot']
custom_hooks = _base_.recipes['full']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
