# Foundation X (Islam et al., WACV 2025, https://arxiv.org/abs/2503.09860) as in the paper:
# Swin-B at 224 px pretrained on 11 chest X-ray datasets as 20 (dataset, task) pairs (11 cls,
# 6 loc, 3 seg), visited in a fixed cycle, with Lock-Release and an EMA teacher
# (method.md section 1). The same modules at tiny sizes: configs/foundation_x_demo.py.
#   python data_converters/convert_all.py --datasets data/cxr --workers 8  (docs/datasets.md)
#   python tools/train.py configs/foundation_x.py
# The data root is one variable, `data_root` in _base_/datasets/foundation_x_data.py
# (default data/cxr/, the converters' output), or set it with FXMM_DATA_ROOT=/path/to/cxr.
_base_ = [
    '_base_/method/foundation_x.py',  # Lock-Release, EMA teacher, consistency loss
    '_base_/schedules/adamw_cosine.py',
    '_base_/datasets/foundation_x_data.py',
    '_base_/models/foundation_x_swin-b.py',
]

# ========================= Frequently modified parameters =========================
# batch_size = (1 GPU) x (24 samples per GPU) = 24, the paper's (`train_batch_size` of the
# data base; a batch holds one pair). Learning rates: AdamW 1e-4, backbone 1e-5, weight decay
# 1e-4 (_base_/schedules/adamw_cosine.py).
max_visits = 3000       # one visit = one pass over one pair; 3000 = 150 cycles (paper)
warmup_visits = 20      # linear warm-up, then cosine to 0 (paper: 20 visits = one cycle)
val_interval = 10000    # iterations between evaluations of student and teacher
# The paper starts from the Swin-B of Ark-6: convert it with
# tools/model_converters/ark_to_fxmm.py --backbone-only and load it here (a plain FoundationX
# checkpoint loads into student and teacher); None = random initialisation.
load_from = None

# ========================= Possibly modified parameters ===========================
# iterations of one visit per pair: None = one full pass over every pair; a dict such as
# {'mimic_cxr.cls': 2000} caps very large pairs (the authors cap them per visit)
iters_per_visit = None
warmup_start_factor = 0.01  # warm-up from 1e-6 (backbone 1e-7), as the authors' scheduler

# ========================= Unmodified in most cases ===============================
num_pairs = len(_base_.fx_pairs)
# Every dataset's class lists, with heads for the tasks it trains in `fx_pairs` only: VinDr-CXR
# and ChestX-ray14 have boxes, but Foundation X trains their cls alone, so they get no (never
# trained) DINO branch.
fx_model_datasets = {
    name: dict(classes, tasks=[task for var, task in _base_.fx_pairs if _base_[var].name == name])
    for name, classes in _base_.fx_datasets.items()
}
student = dict(_base_.model, datasets=fx_model_datasets)
# mmdet's semi-supervised pattern: one model owns the student and its frozen EMA teacher
model = dict(
    _delete_=True,
    type='TeacherStudent',
    model=student,
    consistency_weight=_base_.consistency_weight,
    consistency_mode='add')

train_dataloader = dict(sampler=dict(iters_per_visit=iters_per_visit))
train_cfg = dict(max_visits=max_visits, val_interval=val_interval)
# The schedulers count cycles (one visit to every pair): with a MultiTaskSampler mmengine's
# "epoch" is one cycle (len(train_dataloader) is its number of iterations), and
# convert_to_iter_based turns cycles into iterations, whatever the lengths of the visits.
# A number of visits that is not a multiple of num_pairs becomes that fraction of a cycle.
param_scheduler = [
    dict(type='LinearLR', start_factor=warmup_start_factor, by_epoch=True,
         convert_to_iter_based=True, begin=0, end=warmup_visits / num_pairs),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, convert_to_iter_based=True,
         begin=warmup_visits / num_pairs, end=max_visits / num_pairs),
]
# the batch the learning rates are set for (USER SHOULD NOT CHANGE ITS VALUE)
auto_scale_lr = dict(enable=False, base_batch_size=24)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=3))
