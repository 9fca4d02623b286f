# The data pipelines of Foundation X's pretraining and fine-tuning (method.md), one set per
# image size: `cxr_pipelines[size]` = dict(train=dict(cls=..., loc=..., seg=...), test=...),
# for the sizes the configs train at (128: the phantoms; 224: the paper's datasets). A config
# that reads them sets `cxr_pipelines = None` after, to leave the table out of the saved config.


def _pipelines(size):  # noqa: E302  (evaluated when the config is read)
    load = [dict(type='LoadCXRImage', defer_norm=True), dict(type='LoadCXRAnnotations')]
    pack = [dict(type='PackCXRInputs')]
    crop = dict(type='CXRRandomResizedCrop', scale=(size, size), area_range=(0.8, 1.0))
    return dict(
        train=dict(
            cls=load + [crop, dict(type='CXRRandomRotate', max_angle=7.)] + pack,
            loc=load + [dict(crop, min_box_visibility=0.5)] + pack,
            # the flip swaps left/right classes via the dataset's lr_pairs
            seg=load + [crop, dict(type='CXRRandomFlip', prob=0.5)] + pack),
        # masks loaded after the resize stay at the original size: the Dice is computed there
        test=[load[0], dict(type='LoadCXRAnnotations', with_seg=False),
              dict(type='CXRResize', scale=(size, size)),
              dict(type='LoadCXRAnnotations', with_cls=False, with_bbox=False)] + pack)


cxr_pipelines = {size: _pipelines(size) for size in (128, 224)}
