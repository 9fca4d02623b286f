# Foundation X's pretraining setup without its training method (method.md section 1): the 20
# (dataset, task) pairs of _base_/datasets/foundation_x_data.py, the Swin-B model with a head for
# each task a dataset trains, AdamW, and the schedule of 3000 visits. configs/foundation_x.py
# adds the method (Lock-Release, EMA teacher); the single-task baselines
# (configs/baselines/_base_/) train one pair of it alone.
_base_ = [
    './schedules/adamw_cosine.py',  # AdamW 1e-4, backbone 1e-5, weight decay 1e-4
    './datasets/foundation_x_data.py',
    './models/foundation_x_swin-b.py',
]

# ========================= Frequently modified parameters =========================
# batch_size = (1 GPU) x (24 samples per GPU) = 24, the paper's (`train_batch_size` of the
# data base; a batch holds one pair).
max_visits = 3000       # one visit = one pass over one pair; 3000 = 150 cycles (paper)
warmup_visits = 20      # linear warm-up, then cosine to 0 (paper: 20 visits = one cycle)
val_interval = 10000    # iterations between evaluations

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
model = dict(datasets=fx_model_datasets)

train_dataloader = dict(sampler=dict(iters_per_visit=iters_per_visit))
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
