# The fine-tuning recipes of configs/finetune/ at the size of the demo model
# (configs/foundation_x_demo.py), on the synthetic phantoms: they fine-tune the checkpoint
# that `make demo` writes, on a laptop CPU, and run in the tests. The targets are phantom
# datasets under new names (configs/finetune/_base_/phantom_data.py), so their heads are new.
# The model: configs/_base_/models/foundation_x_tiny.py, as the demo's student.
#   make demo
#   python tools/train.py configs/finetune/phantom/fx-ft_demo_phantom-organs-seg_lock-release.py
_base_ = ['../../_base_/fx-finetune.py', '../../../_base_/models/foundation_x_tiny.py']

# ========================= Frequently modified parameters =========================
# the last checkpoint of `make demo`, a TeacherStudent: its student is loaded
pretrained = 'work_dirs/foundation_x_demo/iter_2560.pth'
pretrained_prefix = 'student.'
max_iters = 200         # the one visit of the target pair
val_interval = 100
train_batch_size = 8
num_workers = 2
base_lr = 5e-4          # the demo's learning rate (backbone: 0.1x, as for Swin-B)

# ========================= Unmodified in most cases ===============================
# the heads of the demo's datasets are left out; the target's head is new
model = dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix=pretrained_prefix))

optim_wrapper = dict(optimizer=dict(lr=base_lr))
train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    sampler=dict(batch_size=train_batch_size, iters_per_visit=max_iters))
val_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    sampler=dict(batch_size=train_batch_size))
test_dataloader = val_dataloader
train_cfg = dict(val_interval=val_interval)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=val_interval))
