# Foundation X (Islam et al., WACV 2025, https://arxiv.org/abs/2503.09860) as in the paper
# (method.md section 1): Swin-B at 224 px pretrained on 11 chest X-ray datasets as 20
# (dataset, task) pairs (11 cls, 6 loc, 3 seg), visited in a fixed cycle for 3000 visits
# (_base_/foundation_x_pretraining.py: data, model, AdamW, schedule), with Lock-Release and an
# EMA teacher (_base_/method/foundation_x.py). The same modules at tiny sizes:
# configs/foundation_x_demo.py.
#   python data_converters/convert_all.py --datasets data/cxr --workers 8  (docs/datasets.md)
#   python tools/train.py configs/foundation_x.py
# The data root is one variable, `data_root` in _base_/datasets/foundation_x_data.py
# (default data/cxr/, the converters' output), or set it with FXMM_DATA_ROOT=/path/to/cxr.
_base_ = [
    '_base_/method/foundation_x.py',  # Lock-Release, EMA teacher, consistency loss
    '_base_/foundation_x_pretraining.py',  # 20 pairs, Swin-B, AdamW, 3000 visits
]

# The paper starts from the Swin-B of Ark-6: convert it with
# tools/model_converters/ark_to_fxmm.py --backbone-only and load it here (a plain FoundationX
# checkpoint loads into student and teacher); None = random initialisation.
load_from = None

student = _base_.model
# mmdet's semi-supervised pattern: one model owns the student and its frozen EMA teacher
model = dict(
    _delete_=True,
    type='TeacherStudent',
    model=student,
    consistency_weight=_base_.consistency_weight,
    consistency_mode='add')
train_cfg = dict(max_visits=_base_.max_visits, val_interval=_base_.val_interval)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=_base_.val_interval, max_keep_ckpts=3))
