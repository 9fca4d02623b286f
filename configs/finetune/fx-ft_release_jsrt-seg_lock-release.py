# JSRT segmentation (heart, lungs, clavicles), lock-then-release, from the authors' released
# Foundation X: the architecture of configs/foundation_x_release.py (its backbone with per-task
# norms and its seg decoder; a new 3x3 head for JSRT), loaded with `load_from` from the
# release converted as one plain FoundationX copy (docs/transfer.md):
#   python tools/model_converters/foundation_x_to_fxmm.py FoundationX.pth \
#       checkpoints/foundation-x_release_teacher.pth \
#       --config configs/foundation_x_release.py --copies teacher
# Any target and recipe works the same way: `_base_.targets['<target>@release']`.
_base_ = './_base_/fx-finetune_swin-b.py'
model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['jsrt-seg@release']
model = dict(model, init_cfg=None)  # the weights come from load_from
load_from = 'checkpoints/foundation-x_release_teacher.pth'
custom_hooks = _base_.recipes['lock-release']['seg']
targets = recipes = None  # read above; left out of the saved config
