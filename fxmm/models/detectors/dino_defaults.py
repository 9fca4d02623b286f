"""The DINO-4scale defaults of :class:`~fxmm.models.detectors.SharedDINO`: the Foundation X
paper's detector settings, used where a config leaves a part out."""

# DINO-4scale, the FX paper's detector (method.md; IDEA-Research/DINO config/DINO/DINO_4scale.py,
# the authors' too), in mmdet's modules (configs/dino/dino-4scale_r50_8xb2-12e_coco.py).
# ``embed_dims``/``num_levels`` of the attention configs are filled in from the detector.
# The input projection: a 1x1 conv + GroupNorm(32) per backbone level, a stride-2 3x3 conv
# + GroupNorm on the last one for each extra level; ``in_channels``, ``out_channels`` and
# ``num_outs`` are filled in from the detector. mmdet's ChannelMapper leaves out the conv
# biases before a norm (``bias='auto'``); IDEA's DINO (the authors' release) has them
# (``bias=True``).
DINO_NECK = dict(
    type='mmdet.ChannelMapper', kernel_size=1, act_cfg=None,
    norm_cfg=dict(type='GN', num_groups=32))
DINO_ENCODER = dict(
    num_layers=6,
    layer_cfg=dict(
        self_attn_cfg=dict(dropout=0.0),
        ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0)))
DINO_DECODER = dict(
    num_layers=6,
    return_intermediate=True,
    layer_cfg=dict(
        self_attn_cfg=dict(num_heads=8, dropout=0.0),
        cross_attn_cfg=dict(dropout=0.0),
        ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0)),
    post_norm_cfg=None)
DINO_POSITIONAL_ENCODING = dict(num_feats=128, normalize=True, offset=0.0, temperature=20)
# de-noising: dn_number 100, dn_label_noise_ratio 0.5, dn_box_noise_scale 0.4 (mmdet's DINO
# config uses 1.0)
DINO_DN_CFG = dict(
    label_noise_scale=0.5,
    box_noise_scale=0.4,
    group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=100))
DINO_HEAD = dict(
    type='mmdet.DINOHead',
    sync_cls_avg_factor=True,
    loss_cls=dict(
        type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
    loss_bbox=dict(type='mmdet.L1Loss', loss_weight=5.0),
    loss_iou=dict(type='mmdet.GIoULoss', loss_weight=2.0))
# Matching costs equal to the loss weights (FX method: focal 1, L1 5, GIoU 2); mmdet's
# DINO config weighs the focal cost 2.0.
DINO_TRAIN_CFG = dict(
    assigner=dict(
        type='mmdet.HungarianAssigner',
        match_costs=[
            dict(type='mmdet.FocalLossCost', weight=1.0),
            dict(type='mmdet.BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='mmdet.IoUCost', iou_mode='giou', weight=2.0)
        ]))
DINO_TEST_CFG = dict(max_per_img=300)  # DINO's num_select
