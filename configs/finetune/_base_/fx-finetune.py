# Fine-tuning a pretrained Foundation X on one downstream (dataset, task) pair, for a model of
# any size (fx-finetune_swin-b.py adds the paper's, configs/finetune/phantom/_base_/
# fx-finetune_demo.py the demo's): the paper's transfer experiments (method.md section 1,
# "Fine-tuning and transfer"; docs/transfer.md).
# Organ localisation and segmentation on VinDr-CXR (CheXmask heart and lungs), segmentation
# on JSRT (heart, lungs, clavicles), Montgomery (lungs) and VinDr-RibCXR (20 ribs), and
# few-shot JSRT. A leaf config picks a target and a recipe by name:
#   model, train_dataloader, val_dataloader, test_dataloader = _base_.targets['jsrt-seg']
#   custom_hooks = _base_.recipes['lock-release']['seg']
#   targets = recipes = None  # the tables, left out of the saved config
# '<target>@release' is the same target on the architecture of the authors' released Foundation
# X (configs/foundation_x_release.py: per-task stage norms, their seg decoder and DINO), to start
# from the converted release with `load_from` (docs/transfer.md, e.g.
# fx-ft_release_jsrt-seg_lock-release.py).
# Recipes (what is frozen: the backbone and the task's shared neck, i.e. everything the
# pretraining trained for that task's path, as FoundationX.shared_modules names it; the target
# dataset's own head always trains):
#   full          nothing frozen;
#   frozen        frozen for the whole run: head only (for seg a 1x1 conv, a linear probe);
#   lock-release  the authors' "freeze-and-train heads, then unfreeze": frozen for the first
#                 `lock_fraction` of the run, then everything trains.
# Freezing is done by LockReleaseHook: requires_grad off and grads None, so AdamW moves
# nothing (no weight decay, no momentum), the parameters stay in the optimiser, and
# gradient clipping sees the trained parameters only (a frozen BatchNorm, the UperNet's, still
# updates its running statistics in training mode, unless the hook has norm_eval=True). The
# hook locks the first part of each visit, so a fine-tuning run is ONE visit of the target
# pair lasting `max_iters` iterations.
_base_ = [
    '../../_base_/default_runtime.py',
    '../../_base_/schedules/adamw_cosine.py',  # AdamW 1e-4, backbone 1e-5, weight decay 1e-4
    '../../_base_/datasets/cxr_pipelines.py',
    '../../_base_/models/foundation_x_release_parts.py',  # for the '<target>@release' targets
    '../../_base_/datasets/vindr_cxr_organs.py',
    '../../_base_/datasets/jsrt.py',
    '../../_base_/datasets/montgomery.py',
    '../../_base_/datasets/vindr_ribcxr.py',
    './phantom_data.py',
]

# ========================= Frequently modified parameters =========================
data_root = '{{$FXMM_DATA_ROOT:data/cxr}}/'  # the converters' output (docs/datasets.md)
img_size = 224          # the pretraining size of Foundation X
train_batch_size = 24   # per GPU (the pretraining batch)
num_workers = 8
# Read the images from the store of tools/prepare_images.py (docs/datasets.md, "Preparing
# images"): the store's folder inside each dataset's folder, e.g. 'prepared/512/'; 'none'
# reads the original files. Or run with FXMM_IMAGE_STORE=prepared/512/ python tools/train.py
image_store = '{{$FXMM_IMAGE_STORE:none}}'
# Length of the run = the one visit of the target pair. The value is baked into the
# sampler: on the command line set train_dataloader.sampler.iters_per_visit=<n>.
max_iters = 2000
val_interval = 200      # iterations between evaluations (and checkpoints)
warmup_iters = 50       # linear warm-up, then cosine to 0
lock_fraction = 0.5     # lock-release: the frozen share of the run
# Few-shot targets (*-fewshot): a seeded subset of the train split, whole patients. On the
# command line: train_dataloader.dataset.pairs.0.dataset.num_samples=<N> and ...subset_seed=<s>
num_shots = 3           # paper: 3, 6, 12, 24 training images
shot_seed = 0

# ========================= Unmodified in most cases ===============================
# the parts of the released architecture each task's path has (backbone, and its neck / head)
release_parts = dict(
    loc=dict(backbone=_base_.fx_release_backbone, loc_head=_base_.fx_release_loc_head),
    seg=dict(backbone=_base_.fx_release_backbone, seg_neck=_base_.fx_release_seg_neck,
             seg_head=_base_.fx_release_seg_head))


def _target(data, task, root=data_root, size=img_size, release=False, **train_kwargs):
    """[model, train, val, test dataloader] overrides that train and evaluate the one pair
    (`data` from configs/_base_/datasets/, `task`); `release`: on the released architecture;
    `train_kwargs` go to the train split's CXRDataset."""
    pipelines = _base_.cxr_pipelines[size]  # the pretraining augmentations per task

    def loader(split):
        kwargs = (dict(data['train_kwargs'], **train_kwargs) if split == 'train'
                  else data['test_kwargs'])
        dataset = dict(type='CXRDataset', data_root=root + data['folder'],
                       ann_file=data['ann_file'][split],
                       data_prefix=dict(img_path='' if image_store == 'none' else image_store),
                       pipeline=pipelines['train'][task] if split == 'train'
                       else pipelines['test'], test_mode=split != 'train', **kwargs)
        return dict(dataset=dict(pairs=[dict(name=data['name'], task=task, dataset=dataset)]))

    # the dataset's class lists, with a head for `task` only (FoundationX builds no head
    # and no neck for the other tasks)
    classes = dict(cls_classes=data['cls_classes'], det_classes=data['det_classes'],
                   seg_classes=data['seg_classes'])
    model = dict(datasets={data['name']: dict(classes, tasks=[task])},
                 **(release_parts[task] if release else {}))
    return [model, loader('train'), loader('val'), loader('test')]


def _recipe(fraction):
    """task -> custom_hooks: the runtime's, plus a LockReleaseHook freezing the task's
    shared modules for the first `fraction` of the run (None: no hook)."""
    return {task: _base_.custom_hooks + ([] if fraction is None else [
        dict(type='LockReleaseHook', lock_tasks=[task], lock_fraction=fraction)])
        for task in ('loc', 'seg')}


few_shot = dict(num_samples=num_shots, subset_seed=shot_seed)
targets = {
    'vindr-organs-loc': _target(_base_.vindr_cxr_organs_data, 'loc'),
    'vindr-organs-seg': _target(_base_.vindr_cxr_organs_data, 'seg'),
    'jsrt-seg': _target(_base_.jsrt_data, 'seg'),
    'montgomery-seg': _target(_base_.montgomery_data, 'seg'),
    'vindr-ribcxr-seg': _target(_base_.vindr_ribcxr_data, 'seg'),
    'jsrt-seg-fewshot': _target(_base_.jsrt_data, 'seg', **few_shot),
    # the same targets on the released architecture
    'vindr-organs-loc@release': _target(_base_.vindr_cxr_organs_data, 'loc', release=True),
    'vindr-organs-seg@release': _target(_base_.vindr_cxr_organs_data, 'seg', release=True),
    'jsrt-seg@release': _target(_base_.jsrt_data, 'seg', release=True),
    'montgomery-seg@release': _target(_base_.montgomery_data, 'seg', release=True),
    'vindr-ribcxr-seg@release': _target(_base_.vindr_ribcxr_data, 'seg', release=True),
    'jsrt-seg-fewshot@release': _target(_base_.jsrt_data, 'seg', release=True, **few_shot),
    # the twins on the synthetic phantoms (configs/finetune/phantom/)
    'phantom-organs-seg': _target(_base_.phantom_organs_data, 'seg', _base_.phantom_root,
                                  _base_.phantom_img_size),
    'phantom-lesions-loc': _target(_base_.phantom_lesions_data, 'loc', _base_.phantom_root,
                                   _base_.phantom_img_size),
    'phantom-organs-seg-fewshot': _target(_base_.phantom_organs_data, 'seg',
                                          _base_.phantom_root, _base_.phantom_img_size,
                                          **few_shot),
}
recipes = {'full': _recipe(None), 'frozen': _recipe(1.0), 'lock-release': _recipe(lock_fraction)}
cxr_pipelines = None  # read above; left out of the saved config

train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    # one visit = the whole run (the leaf gives the dataset's one pair)
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='cyclic',
                 iters_per_visit=max_iters),
    dataset=dict(type='MultiTaskDataset'))
val_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='sequential'),
    dataset=dict(type='MultiTaskDataset'))
test_dataloader = val_dataloader
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator

train_cfg = dict(type='CyclicTrainLoop', max_visits=1, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    # `end` defaults to the loop's max_iters (the one visit)
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=False, begin=warmup_iters),
]
# the batch the learning rates are set for (USER SHOULD NOT CHANGE ITS VALUE)
auto_scale_lr = dict(enable=False, base_batch_size=24)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=val_interval, save_best='score', rule='greater',
                    max_keep_ckpts=2))
randomness = dict(seed=0)
