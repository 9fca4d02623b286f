# Few-shot JSRT: full fine-tuning of the pretrained Foundation X on a seeded subset of
# `num_shots` training images (whole patients), evaluated on the whole test split. The paper's
# few-shot experiment is JSRT clavicles with 3, 6, 12 and 24 images (Dice 78.18 with 3 ... 88.81
# with 24, method.md section 3): its numbers are the clavicle Dice (Dice_left_clavicle,
# Dice_right_clavicle) of this run, which trains the five JSRT classes. Several seeds per N:
#   for n in 3 6 12 24; do for s in 0 1 2; do
#     python tools/train.py configs/finetune/fx-ft_swin-b_jsrt-seg-fewshot_full.py \
#       --work-dir work_dirs/jsrt-fewshot/n${n}_seed${s} --cfg-options \
#       train_dataloader.dataset.pairs.0.dataset.num_samples=$n \
#       train_dataloader.dataset.pairs.0.dataset.subset_seed=$s
#   done; done
_base_ = './_base_/fx-finetune_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['jsrt-seg-fewshot']
custom_hooks = _base_.recipes['full']['seg']
targets = recipes = None  # read above; left out of the saved config (it would be 4x as long)
