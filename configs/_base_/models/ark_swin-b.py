# The Foundation Ark model at the paper's size (Ma et al., MICCAI 2023,
# https://arxiv.org/abs/2310.09507; method.md section 2) in fxmm's modules: a FoundationX
# student with the classification path only - Swin-B at 224 px, the pooled stage 4 (1024-d),
# one linear projector 1024 -> 1376 shared by all datasets, one linear head per dataset on its
# output - and its EMA teacher, in a TeacherStudent with Ark's loss
#   (1 - c) * BCE(student head) + c * MSE(student projector, teacher projector).
# The config that uses it adds `datasets` (the class lists that size the heads) to
# model.model, as configs/ark.py does, and tests with `tta_model` (the teacher, ten crops).
swin_channels = [128, 256, 512, 1024]  # Swin-B stages, strides 4 / 8 / 16 / 32
projector_dims = 1376  # the authors' --projector_features (a linear layer, no MLP)

model = dict(
    type='TeacherStudent',
    consistency_mode='ark',  # (1 - c) * task loss + c * consistency
    # c rises from 0 to 0.5 with a cosine over training: the authors compute it as
    # (momentum - 0.9) * 5 from the teacher's 0.9 -> 1 cosine momentum
    consistency_weight=dict(type='cosine', start=0., end=0.5),
    predict_on='teacher',  # the teacher is Ark's released model (validation runs both)
    model=dict(
        type='FoundationX',
        # grey -> 3 channels, ImageNet mean / std (the authors' normalisation)
        data_preprocessor=dict(type='CXRDataPreprocessor', pad_size_divisor=32),
        backbone=dict(
            type='mmpretrain.SwinTransformer',
            arch='base',          # patch 4, embed 128, depths 2-2-18-2, heads 4-8-16-32
            img_size=224,
            window_size=7,
            drop_path_rate=0.1,   # timm's default, which the authors' Swin keeps
            pad_small_map=False,  # the 224 px stage maps (56, 28, 14, 7) are multiples of 7
            # the last stage only, with its LayerNorm: timm's Swin of the authors (the cls path
            # pools it and nothing else), and mmpretrain's ImageNet classifiers
            out_indices=(3, )),
        cls_head=dict(type='MultiDatasetClsHead', in_channels=swin_channels[-1],
                      projector_dims=projector_dims)))

# the test-time wrapper (tools/test.py --tta): Ark's ten crops of the 256 x 256 test images
tta_model = dict(type='TenCropTTA', crop_size=224, flip=True)
