# The Foundation X model at the demo's size: the modules of _base_/models/foundation_x_swin-b.py
# (Swin, shared DINO, shared UperNet, per-dataset heads) small enough to train on a laptop CPU,
# at the phantoms' 128 px. Used by configs/foundation_x_demo.py and the phantom fine-tuning
# twins (configs/finetune/phantom/). The config that uses it adds `datasets`.
_base_ = './swin_demo.py'

embed_dims = _base_.demo_swin.arch.embed_dims  # 48 (Swin-B: 128)
num_queries = 30       # DINO queries (paper: 900)
seg_channels = 32      # shared UperNet width (paper: 128)
stage_channels = [embed_dims * 2**i for i in range(4)]

model = dict(
    type='FoundationX',
    data_preprocessor=dict(type='CXRDataPreprocessor', pad_size_divisor=32),
    backbone=_base_.demo_swin,
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
    # Dice + BCE: the pixel-wise BCE gives small and thin masks (pneumothorax) a gradient
    # from the first iterations, where Dice alone stays near 1 for a long time. The Dice
    # counts the masks an image has (ignore_empty): on an empty mask it would push every
    # pixel towards 0 harder than a present mask pulls its pixels up, and the pneumothorax
    # head would learn to predict nothing; BCE still covers the empty masks.
    seg_head=dict(
        type='MultiDatasetSegHead',
        in_channels=seg_channels,
        loss_decode=[dict(type='MultiLabelDiceLoss', ignore_empty=True),
                     dict(type='MaskedBCEWithLogitsLoss', loss_name='loss_bce')]),
)
