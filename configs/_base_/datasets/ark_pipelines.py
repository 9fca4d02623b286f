# The data pipelines of Foundation Ark (method.md section 2), one set per training crop size:
# `ark_pipelines[size]` = dict(train=..., val=..., test=...), for the sizes the configs
# train at (128: the phantoms; 224: the paper's datasets). Val / test images are
# resized to 8/7 of the crop (Ark: Resize((256, 256)) for 224 crops). A config that reads them
# sets `ark_pipelines = None` after, to leave the table out of the saved config.


def _ark_pipelines(size):  # noqa: E302  (evaluated when the config is read)
    test_size = round(size * 8 / 7)
    load = [dict(type='LoadCXRImage', defer_norm=True),
            dict(type='LoadCXRAnnotations', with_bbox=False, with_seg=False)]
    resize = dict(type='CXRResize', scale=(test_size, test_size))
    pack = [dict(type='PackCXRInputs')]
    return dict(
        train=load + [
            # the authors' albumentations RandomResizedCrop(224, 224): 8-100 % of the area
            dict(type='CXRRandomResizedCrop', scale=(size, size), area_range=(0.08, 1.0)),
            # their ShiftScaleRotate(rotate_limit=10) fires with probability 0.5; its small
            # shift / scale and the brightness-contrast-gamma jitter (p=0.3) have no CXR
            # transform here
            dict(type='CXRRandomRotate', max_angle=10., prob=0.5)] + pack,
        # validation as the authors': resize, then the centre crop
        val=load + [resize, dict(type='mmcv.CenterCrop', crop_size=size)] + pack,
        # test: the whole resized image; TenCropTTA (tta_model, tools/test.py --tta) takes
        # the crops
        test=load + [resize] + pack)


ark_pipelines = {size: _ark_pipelines(size) for size in (128, 224)}
