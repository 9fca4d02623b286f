# The authors' released Foundation X (jlianglab/Foundation_X) exactly: the same training set-up
# as configs/foundation_x.py, with the architecture of their checkpoint, so that it converts
# key for key and gives their outputs (docs/model_zoo.md):
#   python tools/model_converters/foundation_x_to_fxmm.py FoundationX.pth fx_release.pth \
#       --config configs/foundation_x_release.py
#   python tools/test.py configs/foundation_x_release.py fx_release.pth   # student and teacher
# Differences from configs/foundation_x.py (the mmdet DINO + mmseg UperNet design):
# - backbone: the detection Swin (windows shift on the 7 x 7 stage 4 too: pad_small_map) with
#   one set of stage norms per task - cls `norm` on stage 4, loc `Locnorm1-3` on stages 2-4,
#   seg none (the raw stages; their `Segnorm0-3` are never applied);
# - seg: their decoder (PSPFPNNeck: PSP bins 1-2-4-6 with a full-width bottleneck, a
#   non-cascaded FPN without norms, one shared 3x3 smooth conv) and 3x3 heads;
# - loc: their DINO (per-decoder memory projection, ...; the `loc_head` entry below);
# - TBX11K cls: one output, TB (their label: the image is of the TB class); configs/foundation_x.py
#   has the 3 classes of the TBX11K annotations. Evaluating this head needs one-class TB labels.
_base_ = './foundation_x.py'

# The release holds 6 seg heads in their dataset order (TBX11K, NODE21, CANDID-PTX, RSNA,
# ChestX-Det, SIIM-ACR), 3 of them never trained (no masks in those datasets: they hold their
# initialisation). True builds them too (the model is the file exactly); False leaves them out
# (the converter then reports them as dropped, with that reason).
with_untrained_seg_heads = True
untrained_seg_heads = ('tbx11k', 'node21', 'rsna_pneumonia')
swin_channels = [128, 256, 512, 1024]  # Swin-B stages, strides 4 / 8 / 16 / 32

# the class lists of configs/foundation_x.py, changed where the release differs
release_datasets = {name: dict(seg_classes=['untrained'])
                    for name in (untrained_seg_heads if with_untrained_seg_heads else ())}
release_datasets['tbx11k'] = dict(release_datasets.get('tbx11k', {}), cls_classes=['TB'])
model = dict(
    model=dict(
        datasets=release_datasets,
        backbone=dict(
            _delete_=True,
            type='TaskNormSwinTransformer',
            arch='base',          # patch 4, embed 128, depths 2-2-18-2, heads 4-8-16-32
            img_size=224,
            window_size=7,
            drop_path_rate=0.2,   # the authors' Swin
            pad_small_map=True,   # their detection Swin shifts the windows of stage 4 too
            out_indices=(0, 1, 2, 3),
            task_norms=dict(cls=(3, ), loc=(1, 2, 3), seg=())),
        # ---- loc_head: the release DINO options (owned by the localisation work of #17)
        # Their DINO (dino_F6.py, deformable_transformer_F6.py; DINO-4scale otherwise): conv
        # biases in the input projection; per decoder a Linear on the encoder memory ahead
        # of the proposals and the decoder, box refinement separate from the output heads,
        # 14 class rows indexed by COCO category id (ids from 1) and a 16-row de-noising label
        # table, the head's reference clamp of their inverse_sigmoid (1e-3).
        loc_head=dict(
            neck=dict(type='mmdet.ChannelMapper', kernel_size=1, act_cfg=None,
                      norm_cfg=dict(type='GN', num_groups=32), bias=True),
            branch_cfg=dict(memory_proj=True, separate_box_refine=True, num_class_rows=14,
                            first_class_row=1, num_label_rows=16, ref_eps=1e-3),
            dn_cfg=dict(box_noise_scale=1.0)),  # their run's --options dn_box_noise_scale=1.0
        # ---- end of loc_head
        seg_neck=dict(
            _delete_=True,
            type='PSPFPNNeck',
            in_channels=swin_channels,
            channels=swin_channels[0],
            pool_scales=(1, 2, 4, 6)),
        seg_head=dict(kernel_size=3)))
