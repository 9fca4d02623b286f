# The fine-tuning recipes of configs/finetune/ at the size of the demo model
# (configs/foundation_x_demo.py), on the synthetic phantoms: they fine-tune the checkpoint
# that `make demo` writes, on a laptop CPU, and run in the tests. The targets are phantom
# datasets under new names (configs/finetune/_base_/phantom_data.py), so their heads are new.
#   make demo
#   python tools/train.py configs/finetune/phantom/fx-ft_demo_phantom-organs-seg_lock-release.py
_base_ = '../../_base_/fx-finetune_swin-b.py'

# ========================= Frequently modified parameters =========================
# the last checkpoint of `make demo` (a TeacherStudent: its student is loaded, as
# `pretrained_prefix` of the base says)
pretrained = 'work_dirs/foundation_x_demo/iter_2560.pth'
max_iters = 200         # the one visit of the target pair
val_interval = 100
train_batch_size = 8
num_workers = 2
base_lr = 5e-4          # the demo's learning rate (backbone: 0.1x, as for Swin-B)

# ========================= Unmodified in most cases ===============================
# The student of configs/foundation_x_demo.py; its `datasets` are set by the leaf's target.
embed_dims = 48
stage_channels = [embed_dims * 2**i for i in range(4)]
num_queries = 30
seg_channels = 32
model = dict(
    _delete_=True,
    type='FoundationX',
    init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix=_base_.pretrained_prefix),
    data_preprocessor=dict(type='CXRDataPreprocessor', pad_size_divisor=32),
    backbone=dict(
        type='mmpretrain.SwinTransformer',
        arch=dict(embed_dims=embed_dims, depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16]),
        img_size=_base_.phantom_img_size,
        window_size=4,
        pad_small_map=True,
        drop_path_rate=0.1,
        out_indices=(0, 1, 2, 3)),
    cls_head=dict(type='MultiDatasetClsHead', in_channels=stage_channels[-1]),
    loc_head=dict(
        type='SharedDINO',
        in_channels=stage_channels[1:],
        num_queries=num_queries,
        encoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=dict(dropout=0.0),
            ffn_cfg=dict(feedforward_channels=512, ffn_drop=0.0))),
        decoder=dict(num_layers=2, return_intermediate=True, post_norm_cfg=None, layer_cfg=dict(
            self_attn_cfg=dict(num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(dropout=0.0),
            ffn_cfg=dict(feedforward_channels=512, ffn_drop=0.0))),
        dn_cfg=dict(label_noise_scale=0.5, box_noise_scale=1.0,
                    group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=10)),
        test_cfg=dict(max_per_img=num_queries)),
    seg_neck=dict(type='SharedUperNet', in_channels=stage_channels, channels=seg_channels),
    seg_head=dict(
        type='MultiDatasetSegHead',
        in_channels=seg_channels,
        loss_decode=[dict(type='MultiLabelDiceLoss'),
                     dict(type='MaskedBCEWithLogitsLoss', loss_name='loss_bce')]),
)

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
