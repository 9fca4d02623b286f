# Foundation Ark (Ma et al., MICCAI 2023, https://arxiv.org/abs/2310.09507) as the authors
# trained Ark-6 (jlianglab/Ark, README "Train Ark-6"; method.md section 2), built from the
# same modules as Foundation X: Swin-B at 224 px; MIMIC-CXR, CheXpert, ChestX-ray14, RSNA
# Pneumonia, VinDr-CXR and Shenzhen as 6 cls (dataset, task) pairs visited in that fixed
# order, one full pass each (an Ark epoch = one cycle of 6 visits); a shared 1024 -> 1376
# projector before the per-dataset heads; loss (1 - c) * BCE + c * MSE(student projector,
# teacher projector), c a cosine 0 -> 0.5; the teacher an EMA of the student after every
# dataset pass, momentum a cosine 0.9 -> 1; the teacher tested with ten crops.
# The same modules at tiny sizes on the phantoms: configs/ark_demo.py.
#   python tools/train.py configs/ark.py
#   python tools/test.py configs/ark.py work_dirs/ark/best_teacher_score_*.pth --tta
# (--tta wraps the model in `tta_model`, TenCropTTA; the test split is resized to 256 for it.)
_base_ = [
    '_base_/method/ark.py',  # the cosine EMA teacher, tested
    '_base_/datasets/ark_data.py',
    '_base_/models/ark_swin-b.py',
]

# ========================= Frequently modified parameters =========================
# batch_size = (4 GPUs) x (50 samples per GPU) = 200, the authors' (`train_batch_size` of
# the data base; a batch holds one dataset)
max_epochs = 200        # --pretrain_epochs: full passes over the 6 datasets
warmup_epochs = 20      # --warmup-epochs
base_lr = 0.3           # --lr (SGD)
val_interval = 27500    # iterations; about 10 epochs (--test_epoch 10) at batch 200 with the
                        # official splits (~2,750 iterations per epoch)
# teacher = m * teacher + (1 - m) * student after each dataset pass, m a cosine 0.9 -> 1
# (_base_/method/ark.py); the consistency weight c follows it (model base)
# the authors' initialisation (--init imagenet): Swin-B ImageNet-22k -> 1k,
# swin_base_patch4_window7_224_22kto1k.pth in mmpretrain's layout; None = random
backbone_init_cfg = dict(
    type='Pretrained',
    checkpoint='https://download.openmmlab.com/mmclassification/v0/swin-transformer/convert/'
    'swin_base_patch4_window7_224_22kto1k-f967f799.pth',
    prefix='backbone.')

# ========================= Possibly modified parameters ===========================
momentum = 0.9          # --momentum; timm's 'sgd' is SGD with Nesterov momentum
weight_decay = 0.       # --weight-decay (default 0)
warmup_lr = 1e-6        # --warmup-lr: the lr the warm-up starts from
min_lr = 1e-5           # --min-lr: the lr the cosine ends at
iters_per_visit = None  # one full pass over the dataset per visit (Ark)

# ========================= Unmodified in most cases ===============================
num_datasets = len(_base_.ark_pairs)
model = dict(
    model=dict(
        datasets=_base_.ark_datasets,
        backbone=dict(init_cfg=backbone_init_cfg)))

train_dataloader = dict(sampler=dict(iters_per_visit=iters_per_visit))
optim_wrapper = dict(
    type='SafeOptimWrapper',  # skips (and after 10 in a row, stops on) non-finite losses
    # only the student is optimised; the teacher follows by EMA
    constructor='StudentOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=base_lr, momentum=momentum, nesterov=True,
                   weight_decay=weight_decay))  # no gradient clipping (--clip-grad None)
# the batch the learning rate is set for (USER SHOULD NOT CHANGE ITS VALUE)
auto_scale_lr = dict(enable=False, base_batch_size=200)

train_cfg = dict(max_visits=max_epochs * num_datasets, val_interval=val_interval)
# An Ark epoch is one cycle of the 6 visits, which is mmengine's "epoch" with a
# MultiTaskSampler (len(train_dataloader) = the iterations of one cycle), so the schedulers
# count epochs as the authors' timm scheduler and convert them to iterations.
# The authors' code calls `lr_scheduler.step(val_loss)`, and timm's signature is
# step(epoch, metric): the validation loss (< 1) became the epoch, so after a first epoch
# at 1e-6 their runs stayed in the warm-up at lr = 1e-6 + val_loss * 0.3 / 20 (a few 1e-3)
# throughout. This config runs the schedule their arguments describe: a linear warm-up
# from 1e-6 over 20 epochs, then a cosine to 1e-5 at epoch 200 (timm's cosine counts from
# epoch 0, so their epoch 20 had 0.293 where this one has 0.3).
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_lr / base_lr, by_epoch=True,
         convert_to_iter_based=True, begin=0, end=warmup_epochs),
    dict(type='CosineAnnealingLR', eta_min=min_lr, by_epoch=True, convert_to_iter_based=True,
         begin=warmup_epochs, end=max_epochs),
]

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=3))
