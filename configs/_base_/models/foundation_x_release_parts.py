# The parts of the authors' released Foundation X (jlianglab/Foundation_X) that differ from
# _base_/models/foundation_x_swin-b.py, for the configs that build it: configs/
# foundation_x_release.py (the release) and the fine-tuning targets that start from it
# (configs/finetune/_base_/fx-finetune_swin-b.py, '<target>@release'). Each is merged into the
# part of that name of foundation_x_swin-b.py's model (the same Swin-B at 224 px, the same
# widths), so only what differs is here.

# the detection Swin (windows shift on the 7 x 7 stage 4 too: pad_small_map) with one set of
# stage norms per task: cls `norm` on stage 4, loc `Locnorm1-3` on stages 2-4, seg none (the
# raw stages; the release's `Segnorm0-3` are never applied)
fx_release_backbone = dict(
    type='TaskNormSwinTransformer',
    pad_small_map=True,
    task_norms=dict(cls=(3, ), loc=(1, 2, 3), seg=()))
# ---- the release DINO options of SharedDINO (owned by the localisation work of #17)
# their DINO (dino_F6.py, deformable_transformer_F6.py; DINO-4scale otherwise): conv biases in
# the input projection; per decoder a Linear on the encoder memory ahead of the proposals and
# the decoder, one box-refinement MLP apart from the output heads, 14 class rows indexed by
# COCO category id (ids from 1, in the order of det_classes) and a 16-row de-noising label
# table; the head clamps references as their inverse_sigmoid (1e-3)
fx_release_loc_head = dict(
    neck=dict(type='mmdet.ChannelMapper', kernel_size=1, act_cfg=None,
              norm_cfg=dict(type='GN', num_groups=32), bias=True),
    branch_cfg=dict(memory_proj=True, separate_box_refine=True, num_class_rows=14,
                    first_class_row=1, num_label_rows=16, ref_eps=1e-3),
    dn_cfg=dict(box_noise_scale=1.0))  # their run's --options dn_box_noise_scale=1.0
# ---- end of the loc_head options
# their seg decoder: PSP bins 1-2-4-6 with a full-width bottleneck, a non-cascaded FPN without
# norms, one shared 3x3 smooth conv (128 channels, as the UperNet it replaces); 3x3 heads
fx_release_seg_neck = dict(type='PSPFPNNeck', pool_scales=(1, 2, 4, 6))
fx_release_seg_head = dict(kernel_size=3)
