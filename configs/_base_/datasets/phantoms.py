# The built-in synthetic chest phantoms (data_converters/synthetic.py): four small "datasets"
# with different label spaces and tasks, 8 (dataset, task) pairs.
#   python data_converters/synthetic.py --out data/phantoms --seed 0
phantom_root = 'data/phantoms/'
img_size = 128          # every pair is trained and evaluated at img_size x img_size
train_batch_size = 8    # per GPU; one batch = one (dataset, task) pair
num_workers = 2

cls_train_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='LoadCXRAnnotations'),
    dict(type='CXRRandomResizedCrop', scale=(img_size, img_size), area_range=(0.8, 1.0)),
    dict(type='CXRRandomRotate', max_angle=7.),
    dict(type='PackCXRInputs'),
]
loc_train_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='LoadCXRAnnotations'),
    dict(type='CXRRandomResizedCrop', scale=(img_size, img_size), area_range=(0.8, 1.0),
         min_box_visibility=0.5),
    dict(type='PackCXRInputs'),
]
seg_train_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='LoadCXRAnnotations'),
    dict(type='CXRRandomResizedCrop', scale=(img_size, img_size), area_range=(0.8, 1.0)),
    dict(type='CXRRandomFlip', prob=0.5),  # swaps left/right classes via the dataset's lr_pairs
    dict(type='PackCXRInputs'),
]
test_pipeline = [
    dict(type='LoadCXRImage'),
    dict(type='LoadCXRAnnotations'),
    dict(type='CXRResize', scale=(img_size, img_size)),
    dict(type='PackCXRInputs'),
]
train_pipelines = dict(cls=cls_train_pipeline, loc=loc_train_pipeline, seg=seg_train_pipeline)

# (dataset, task) pairs in visit order
phantom_pairs = [
    ('phantom_cls', 'cls'),
    ('phantom_loc', 'cls'),
    ('phantom_loc', 'loc'),
    ('phantom_seg', 'cls'),
    ('phantom_seg', 'seg'),
    ('phantom_ptx', 'cls'),
    ('phantom_ptx', 'loc'),
    ('phantom_ptx', 'seg'),
]


def _pairs(split, pipelines):  # noqa: E302  (evaluated when the config is read)
    return [
        dict(task=task,
             dataset=dict(type='CXRDataset', data_root=phantom_root + name,
                          ann_file=f'annotations/{split}.json', task=task,
                          pipeline=pipelines[task], test_mode=split != 'train'))
        for name, task in phantom_pairs
    ]


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
    dataset=dict(type='MultiTaskDataset',
                 pairs=_pairs('val', dict(cls=test_pipeline, loc=test_pipeline,
                                         seg=test_pipeline))))
test_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type='MultiTaskSampler', batch_size=train_batch_size, mode='sequential'),
    dataset=dict(type='MultiTaskDataset',
                 pairs=_pairs('test', dict(cls=test_pipeline, loc=test_pipeline,
                                          seg=test_pipeline))))
val_evaluator = dict(type='MultiTaskMetric')
test_evaluator = val_evaluator
