# The six datasets of Foundation Ark's Ark-6 model (method.md section 2) as classification
# (dataset, task) pairs, in the authors' fixed order: each Ark epoch is one full pass over
# every dataset in turn. Each dataset is converted from its official download by
# data_converters/ (docs/datasets.md) into <data_root>/<official folder>/annotations/.
# The one thing to set is the data root: edit `data_root` below, or run with
#   FXMM_DATA_ROOT=/path/to/cxr python tools/train.py configs/ark.py
# Labels, as Ark reads them (the datasets' own configs hold the policies, shared with
# Foundation X): CheXpert training uncertain -> U(0.55, 0.85) per sample (LSR), blank -> 0;
# MIMIC uncertain -> 1, blank -> 0 (all splits); VinDr-CXR image label = OR over its 3
# readers (data_converters/vindr_cxr.py); RSNA Pneumonia: its 3 exclusive classes, one-hot.
_base_ = [
    './ark_pipelines.py',  # Ark's crops; val / test resized to 8/7 of the crop (256 for 224)
    './mimic_cxr.py', './chexpert.py', './chestxray14.py', './rsna_pneumonia.py',
    './vindr_cxr.py', './shenzhen.py',
]

# ========================= Frequently modified parameters =========================
data_root = '{{$FXMM_DATA_ROOT:data/cxr}}/'  # holds the datasets in their official folders
img_size = 224          # training and test crops
train_batch_size = 50   # per GPU; the authors' batch is 200 in total (e.g. 4 GPUs x 50)
num_workers = 8
# Read the images from the store of tools/prepare_images.py (docs/datasets.md, "Preparing
# images"): the store's folder inside each dataset's folder, e.g. 'prepared/512/'; 'none'
# reads the original files. Or run with FXMM_IMAGE_STORE=prepared/512/ python tools/train.py
image_store = '{{$FXMM_IMAGE_STORE:none}}'

# the dataset configs in visit order (the authors' --data_set order of Ark-6)
ark_pairs = ['mimic_cxr_data', 'chexpert_data', 'chestxray14_data', 'rsna_pneumonia_data',
             'vindr_cxr_data', 'shenzhen_data']

# ========================= Unmodified in most cases ===============================
train_pipeline = _base_.ark_pipelines[img_size]['train']
val_pipeline = _base_.ark_pipelines[img_size]['val']
test_pipeline = _base_.ark_pipelines[img_size]['test']
ark_pipelines = None  # read above; left out of the saved config

# the cls class lists of the six datasets, for the model's per-dataset heads
ark_datasets = {_base_[var]['name']: dict(cls_classes=_base_[var]['cls_classes'])
                for var in ark_pairs}


def _pairs(split, pipeline):  # noqa: E302  (evaluated when the config is read)
    pairs = []
    for var in ark_pairs:
        data = _base_[var]
        kwargs = data['train_kwargs'] if split == 'train' else data['test_kwargs']
        pairs.append(dict(
            task='cls',
            dataset=dict(type='CXRDataset', data_root=data_root + data['folder'],
                         ann_file=data['ann_file'][split], task='cls', pipeline=pipeline,
                         data_prefix=dict(img_path='' if image_store == 'none' else image_store),
                         test_mode=split != 'train', **kwargs)))
    return pairs


train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='cyclic'),
    dataset=dict(type='MultiTaskDataset', pairs=_pairs('train', train_pipeline)))
val_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='sequential'),
    dataset=dict(type='MultiTaskDataset', pairs=_pairs('val', val_pipeline)))
test_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='sequential'),
    dataset=dict(type='MultiTaskDataset', pairs=_pairs('test', test_pipeline)))
# Ark reports CheXpert on its 5 competition classes, the others on all their classes
val_evaluator = dict(type='MultiTaskMetric',
                     auc_classes=dict(chexpert=_base_.chexpert_competition_classes))
test_evaluator = val_evaluator
