# Foundation Ark on the built-in synthetic phantoms: the modules of configs/ark.py - cls pairs
# only, visited in a fixed order with one full pass each, the shared projector before the
# per-dataset heads, (1 - c) * BCE + c * MSE with a cosine c, the cosine EMA teacher, the
# teacher tested with ten crops - at tiny sizes, on the image labels of the four phantom
# datasets, so that it trains and evaluates on a laptop CPU: 320 iterations and two
# validations took 72 s on 2 idle cores; the ten-crop test runs 10 views per image.
#   make phantoms   (writes data/phantoms, see configs/_base_/datasets/phantoms.py)
#   python tools/train.py configs/ark_demo.py --work-dir work_dirs/ark_demo
#   python tools/test.py configs/ark_demo.py work_dirs/ark_demo/iter_320.pth --tta
_base_ = [
    '_base_/method/ark.py',  # the cosine EMA teacher, tested
    '_base_/datasets/phantoms.py',
    '_base_/models/ark_swin-b.py',
    '_base_/datasets/ark_pipelines.py',
    '_base_/models/swin_demo.py',  # the demo's Swin, as configs/foundation_x_demo.py
]

# ========================= Frequently modified parameters =========================
max_epochs = 4         # full passes over the 4 datasets, 80 iterations each (Ark: 200)
warmup_epochs = 1      # linear warm-up, then cosine (Ark: 20)
base_lr = 0.05         # SGD; demo: a tiny Swin trained from scratch (Ark: 0.3, ImageNet init)
val_interval = 160     # iterations between evaluations of student and teacher
# teacher = m * teacher + (1 - m) * student after each dataset pass, m a cosine 0.9 -> 1
# (_base_/method/ark.py)

# ========================= Possibly modified parameters ===========================
projector_dims = 516   # Ark's projector widens 1024 -> 1376; the same ratio on 384
iters_per_visit = None  # one full pass per visit (Ark)
train_images = 160     # a seeded subset of each phantom train split (800 images): one pass is
                       # 20 iterations, so the run keeps its 320
# the four phantom datasets' image labels (data_converters/synthetic.py writes them), in
# visit order
ark_phantoms = dict(
    phantom_cls=['nodule', 'mass', 'consolidation', 'effusion', 'pneumothorax'],
    phantom_loc=['nodule', 'mass'],
    phantom_seg=['cardiomegaly'],
    phantom_ptx=['pneumothorax'],
)

# ========================= Unmodified in most cases ===============================
img_size = _base_.img_size
embed_dims = _base_.demo_swin.arch.embed_dims
model = dict(
    model=dict(
        datasets={name: dict(cls_classes=classes) for name, classes in ark_phantoms.items()},
        # the demo's Swin, its last stage only (Ark's)
        backbone=dict(_base_.demo_swin, _delete_=True, out_indices=(3, )),
        cls_head=dict(in_channels=embed_dims * 8, projector_dims=projector_dims)))
tta_model = dict(crop_size=img_size)

train_pipeline = _base_.ark_pipelines[img_size]['train']
val_pipeline = _base_.ark_pipelines[img_size]['val']  # resize to 146, the centre 128
test_pipeline = _base_.ark_pipelines[img_size]['test']  # TenCropTTA (--tta) takes the crops
ark_pipelines = None  # read above; left out of the saved config


def _pairs(split, pipeline):  # noqa: E302  (evaluated when the config is read)
    return [
        dict(task='cls',
             dataset=dict(type='CXRDataset', data_root=_base_.phantom_root + name,
                          ann_file=f'annotations/{split}.json', task='cls', pipeline=pipeline,
                          test_mode=split != 'train',
                          num_samples=train_images if split == 'train' else None))
        for name in ark_phantoms
    ]


train_dataloader = dict(
    sampler=dict(iters_per_visit=iters_per_visit),
    dataset=dict(pairs=_pairs('train', train_pipeline)))
val_dataloader = dict(dataset=dict(pairs=_pairs('val', val_pipeline)))
test_dataloader = dict(dataset=dict(pairs=_pairs('test', test_pipeline)))

optim_wrapper = dict(
    type='SafeOptimWrapper',
    constructor='StudentOptimWrapperConstructor',  # the student only (configs/ark.py)
    optimizer=dict(type='SGD', lr=base_lr, momentum=0.9, nesterov=True, weight_decay=0.))
train_cfg = dict(max_visits=max_epochs * len(ark_phantoms), val_interval=val_interval)
# epochs = cycles of the 4 visits (see configs/ark.py)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, convert_to_iter_based=True,
         begin=0, end=warmup_epochs),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, convert_to_iter_based=True,
         begin=warmup_epochs, end=max_epochs),
]
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=2))
