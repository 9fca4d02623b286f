# Fine-tuning the pretrained Foundation X at the paper's size (Swin-B at 224 px,
# configs/_base_/models/foundation_x_swin-b.py) on one downstream pair: the targets and
# recipes of fx-finetune.py, which a leaf picks by name (e.g. fx-ft_swin-b_jsrt-seg_full.py).
_base_ = ['./fx-finetune.py', '../../_base_/models/foundation_x_swin-b.py']

# The pretrained model (docs/model_zoo.md lists the checkpoints and how to convert them);
# None trains from a random initialisation. To change it on the command line:
#   --cfg-options model.init_cfg.checkpoint=<path> model.init_cfg.prefix=teacher.
pretrained = 'checkpoints/foundation-x_swin-b.pth'
# The part of the checkpoint to load: 'student.' or 'teacher.' for a TeacherStudent
# checkpoint (configs/foundation_x.py), None for a plain FoundationX one (the demo, a
# baseline). The heads of the pretraining datasets are left out; the target's head is new.
pretrained_prefix = 'student.'

model = dict(
    init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix=pretrained_prefix)
    if pretrained else None)
