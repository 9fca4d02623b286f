# The released Ark-6 teacher (jlianglab/Ark, ark6_teacher_ep200_swinb_projector1376_mlp.pth.tar)
# exactly: configs/ark.py with Ark's MLP projector (--use_mlp: Linear 1024 -> 1376, ReLU,
# Linear 1376 -> 1376) before the 6 heads. Convert and test it (docs/model_zoo.md):
#   python tools/model_converters/ark_to_fxmm.py \
#       ark6_teacher_ep200_swinb_projector1376_mlp.pth.tar ark6_fxmm.pth \
#       --config configs/ark6_release.py
#   python tools/test.py configs/ark6_release.py ark6_fxmm.pth --tta
# (a plain FoundationX checkpoint: it loads into both copies of the TeacherStudent.)
_base_ = './ark.py'

model = dict(model=dict(cls_head=dict(projector_mlp=True)))
