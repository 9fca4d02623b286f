# The 11 pretraining datasets of Foundation X as its 20 (dataset, task) pairs: 11 cls, 6 loc,
# 3 seg. Each dataset is converted from its official download by data_converters/
# (docs/datasets.md) into <data_root>/<official folder>/annotations/.
# The one thing to set is the data root: edit `data_root` below, or run with
#   FXMM_DATA_ROOT=/path/to/cxr python tools/train.py configs/foundation_x.py
_base_ = [
    './chexpert.py', './chestxray14.py', './vindr_cxr.py', './shenzhen.py', './mimic_cxr.py',
    './tbx11k.py', './node21.py', './candid_ptx.py', './rsna_pneumonia.py', './chestx_det.py',
    './siim_acr.py', './cxr_pipelines.py',
]

# ========================= Frequently modified parameters =========================
data_root = '{{$FXMM_DATA_ROOT:data/cxr}}/'  # holds the datasets in their official folders
img_size = 224          # Foundation X pretrains at 224 x 224
train_batch_size = 24   # per GPU (paper: 24); one batch = one (dataset, task) pair
num_workers = 8
# Read the images from the store of tools/prepare_images.py (docs/datasets.md, "Preparing
# images"): the store's folder inside each dataset's folder, e.g. 'prepared/512/'; 'none'
# reads the original files. Or run with FXMM_IMAGE_STORE=prepared/512/ python tools/train.py
image_store = '{{$FXMM_IMAGE_STORE:none}}'

# (dataset, task) pairs in visit order: visit k trains pair k mod 20
fx_pairs = [
    ('chexpert_data', 'cls'), ('chestxray14_data', 'cls'), ('vindr_cxr_data', 'cls'),
    ('shenzhen_data', 'cls'), ('mimic_cxr_data', 'cls'),
    ('tbx11k_data', 'cls'), ('tbx11k_data', 'loc'),
    ('node21_data', 'cls'), ('node21_data', 'loc'),
    ('candid_ptx_data', 'cls'), ('candid_ptx_data', 'loc'), ('candid_ptx_data', 'seg'),
    ('rsna_pneumonia_data', 'cls'), ('rsna_pneumonia_data', 'loc'),
    ('chestx_det_data', 'cls'), ('chestx_det_data', 'loc'), ('chestx_det_data', 'seg'),
    ('siim_data', 'cls'), ('siim_data', 'loc'), ('siim_data', 'seg'),
]

# ========================= Unmodified in most cases ===============================
# the pipelines of _base_/datasets/cxr_pipelines.py at img_size
train_pipelines = _base_.cxr_pipelines[img_size].train
test_pipeline = _base_.cxr_pipelines[img_size].test
test_pipelines = dict(cls=test_pipeline, loc=test_pipeline, seg=test_pipeline)
cxr_pipelines = None  # read above; left out of the saved config

# the class lists of every dataset, for the model's per-dataset heads
fx_datasets = {
    _base_[var]['name']: dict(cls_classes=_base_[var]['cls_classes'],
                              det_classes=_base_[var]['det_classes'],
                              seg_classes=_base_[var]['seg_classes'])
    for var, _ in fx_pairs
}


def _pairs(split, pipelines):  # noqa: E302  (evaluated when the config is read)
    pairs = []
    for var, task in fx_pairs:
        data = _base_[var]
        kwargs = data['train_kwargs'] if split == 'train' else data['test_kwargs']
        pairs.append(dict(
            task=task,
            dataset=dict(type='CXRDataset', data_root=data_root + data['folder'],
                         ann_file=data['ann_file'][split], task=task, pipeline=pipelines[task],
                         data_prefix=dict(img_path='' if image_store == 'none' else image_store),
                         test_mode=split != 'train', **kwargs)))
    return pairs


train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='cyclic'),
    dataset=dict(type='MultiTaskDataset', pairs=_pairs('train', train_pipelines)))
val_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='sequential'),
    dataset=dict(type='MultiTaskDataset', pairs=_pairs('val', test_pipelines)))
test_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='sequential'),
    dataset=dict(type='MultiTaskDataset', pairs=_pairs('test', test_pipelines)))
# CheXpert and MIMIC-CXR on the 5 competition classes, the others on all their classes
val_evaluator = dict(
    type='MultiTaskMetric',
    auc_classes=dict(chexpert=_base_.chexpert_competition_classes,
                     mimic_cxr=_base_.chexpert_competition_classes))
test_evaluator = val_evaluator
