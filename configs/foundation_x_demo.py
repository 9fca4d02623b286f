# Foundation X on the built-in synthetic phantoms: the same modules as configs/foundation_x.py
# at tiny sizes, so that it trains, evaluates and writes the results table on a laptop CPU.
#   make phantoms   (writes data/phantoms, see configs/_base_/datasets/phantoms.py)
#   python tools/train.py configs/foundation_x_demo.py
_base_ = [
    '_base_/method/foundation_x.py',  # Lock-Release, EMA teacher, consistency loss
    '_base_/schedules/adamw_cosine.py',
    '_base_/datasets/phantoms.py',
    '_base_/models/foundation_x_tiny.py',
]

# ========================= Frequently modified parameters =========================
max_visits = 160       # 20 cycles over the 8 (dataset, task) pairs: 2560 iterations
iters_per_visit = 16   # iterations per visit (None = one pass over the pair's data); 16 learnt
                       # more than 8 or 32 at the same budget (docs/configs.md)
val_interval = 1280    # iterations between evaluations
warmup_iters = 160     # linear warm-up, then cosine to 0 (FX: 20 visits of 3000)
base_lr = 1e-3         # demo: 10x the paper's 1e-4 (tiny model trained from scratch)
backbone_lr_mult = 0.1 # the paper's: backbone 1e-4, heads 1e-3; a from-scratch Swin at 1e-3
                       # learnt no lesion classes (docs/configs.md)
seg_head_lr_mult = 10. # mask heads at 1e-2: each trains 1/8 of the iterations, and at 1e-3 the
                       # pneumothorax head was still near its start after 1280 (docs/experiments.md)
ptx_mask_prior = 0.022 # the pneumothorax mask head starts at the masks' share of the train
                       # pixels (2.2 % on `make phantoms`) instead of 50 %
# the method as in the paper (_base_/method/foundation_x.py): Lock-Release of the loc and seg
# visits' first half, EMA teacher (momentum 0.8) once per visit, consistency weight 0.5

# ========================= Possibly modified parameters ===========================
# the model's sizes: _base_/models/foundation_x_tiny.py (Swin width 48, 30 DINO queries,
# UperNet width 32)
with_cp = False        # gradient checkpointing of Swin stages (saves memory, ~30% slower);
                       # works under DDP too, see docs/reliability.md
# the class lists of every phantom dataset (data_converters/synthetic.py writes them)
datasets = dict(
    phantom_cls=dict(cls_classes=['nodule', 'mass', 'consolidation', 'effusion',
                                  'pneumothorax']),
    phantom_loc=dict(cls_classes=['nodule', 'mass'], det_classes=['nodule', 'mass']),
    phantom_seg=dict(cls_classes=['cardiomegaly'],
                     seg_classes=['right_lung', 'left_lung', 'heart']),
    phantom_ptx=dict(cls_classes=['pneumothorax'], det_classes=['pneumothorax'],
                     seg_classes=['pneumothorax']),
)

# ========================= Unmodified in most cases ===============================
student = dict(_base_.model, datasets=datasets,
               backbone=dict(_base_.model.backbone, with_cp=with_cp),
               seg_head=dict(_base_.model.seg_head, prior_prob=dict(phantom_ptx=ptx_mask_prior)))
model = dict(_delete_=True, type='TeacherStudent', model=student,
             consistency_weight=_base_.consistency_weight)

train_dataloader = dict(sampler=dict(iters_per_visit=iters_per_visit))
optim_wrapper = dict(
    optimizer=dict(lr=base_lr),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=backbone_lr_mult),
                                    'seg_head': dict(lr_mult=seg_head_lr_mult)}))
train_cfg = dict(max_visits=max_visits, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    # `end` defaults to the loop's max_iters (max_visits converted to iterations)
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, eta_min=0.),
]
default_hooks = dict(
    logger=dict(interval=8),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=2))
