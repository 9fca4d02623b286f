# The Foundation X model at the paper's size (method.md section 1): Swin-B at 224 px; one
# linear cls head per dataset on the pooled stage 4; DINO-4scale with the input projection and
# the deformable encoder shared and one decoder per dataset; UperNet shared, with one seg head
# per dataset. The config that uses it adds `datasets` (the class lists that size the
# per-dataset heads), as configs/foundation_x.py does.
swin_channels = [128, 256, 512, 1024]  # Swin-B stages, strides 4 / 8 / 16 / 32
num_queries = 900      # DINO matching queries
num_dn_queries = 100   # DINO contrastive de-noising queries
seg_channels = 128     # shared UperNet width (the authors' at 224 px)

model = dict(
    type='FoundationX',
    data_preprocessor=dict(type='CXRDataPreprocessor', pad_size_divisor=32),
    backbone=dict(
        type='mmpretrain.SwinTransformer',
        arch='base',          # patch 4, embed 128, depths 2-2-18-2, heads 4-8-16-32
        img_size=224,
        window_size=7,
        drop_path_rate=0.2,   # the authors' Swin
        pad_small_map=False,  # the 224 px stage maps (56, 28, 14, 7) are multiples of 7
        out_indices=(0, 1, 2, 3)),
    cls_head=dict(type='MultiDatasetClsHead', in_channels=swin_channels[-1]),
    # DINO-4scale as in IDEA-Research/DINO config/DINO/DINO_4scale.py (the authors' too):
    # stages 2-4 + one stride-64 level, 6 + 6 layers of width 256, ffn 2048, no dropout.
    loc_head=dict(
        type='SharedDINO',
        in_channels=swin_channels[1:],
        in_indices=(1, 2, 3),
        embed_dims=256,
        num_feature_levels=4,
        num_queries=num_queries,
        encoder=dict(
            num_layers=6,
            layer_cfg=dict(
                self_attn_cfg=dict(num_heads=8, num_points=4, dropout=0.0),
                ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
        decoder=dict(
            num_layers=6,
            return_intermediate=True,
            post_norm_cfg=None,
            layer_cfg=dict(
                self_attn_cfg=dict(num_heads=8, dropout=0.0),
                cross_attn_cfg=dict(num_heads=8, num_points=4, dropout=0.0),
                ffn_cfg=dict(feedforward_channels=2048, ffn_drop=0.0))),
        dn_cfg=dict(
            label_noise_scale=0.5,
            box_noise_scale=0.4,  # DINO-4scale's (mmdet's DINO config uses 1.0)
            group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=num_dn_queries)),
        test_cfg=dict(max_per_img=300)),  # DINO's num_select
    seg_neck=dict(type='SharedUperNet', in_channels=swin_channels, channels=seg_channels,
                  pool_scales=(1, 2, 3, 6)),
    seg_head=dict(type='MultiDatasetSegHead', in_channels=seg_channels,
                  loss_decode=dict(type='MultiLabelDiceLoss')),  # the authors' loss
)
