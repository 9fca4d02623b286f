# The authors' released Foundation X (jlianglab/Foundation_X) exactly: the same training set-up
# as configs/foundation_x.py, with the architecture of their checkpoint, so that it converts
# key for key and gives their outputs (docs/model_zoo.md):
#   python tools/model_converters/foundation_x_to_fxmm.py FoundationX.pth fx_release.pth \
#       --config configs/foundation_x_release.py
#   python tools/test.py configs/foundation_x_release.py fx_release.pth   # student and teacher
# Differences from configs/foundation_x.py (the mmdet DINO + mmseg UperNet design), the parts
# in _base_/models/foundation_x_release_parts.py:
# - backbone: the detection Swin with one set of stage norms per task (TaskNormSwinTransformer);
# - seg: their decoder (PSPFPNNeck) and 3x3 heads;
# - loc: their DINO (per-decoder memory projection, ...: fx_release_loc_head);
# - TBX11K cls: one output, TB (their label: the image is of the TB class); configs/foundation_x.py
#   has the 3 classes of the TBX11K annotations. Training or evaluating this head needs one-class
#   TB labels; the other 19 pairs use the annotation files as they are.
_base_ = ['./foundation_x.py', './_base_/models/foundation_x_release_parts.py']

# The release holds 6 seg heads in their dataset order (TBX11K, NODE21, CANDID-PTX, RSNA,
# ChestX-Det, SIIM-ACR), 3 of them never trained (no masks in those datasets: they hold their
# initialisation). True builds them too (the model is the file exactly); False leaves them out
# (the converter then reports them as dropped, with that reason).
with_untrained_seg_heads = True
untrained_seg_heads = ('tbx11k', 'node21', 'rsna_pneumonia')

# the class lists of configs/foundation_x.py, changed where the release differs
release_datasets = {
    name: dict(seg_classes=['untrained'], tasks=[*_base_.fx_model_datasets[name].tasks, 'seg'])
    for name in (untrained_seg_heads if with_untrained_seg_heads else ())}
release_datasets['tbx11k'] = dict(release_datasets.get('tbx11k', {}), cls_classes=['TB'])
model = dict(
    model=dict(
        datasets=release_datasets,
        backbone=_base_.fx_release_backbone,
        loc_head=_base_.fx_release_loc_head,
        seg_neck=_base_.fx_release_seg_neck,
        seg_head=_base_.fx_release_seg_head))
