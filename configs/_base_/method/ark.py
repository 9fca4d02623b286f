# Ark's training method (method.md section 2) on top of the shared wiring: the teacher an EMA
# of the student after every dataset pass (a visit), its momentum a cosine 0.9 -> 1
# (--momentum_teacher 0.9), and the teacher tested (the model's predict_on copy).
# configs/ark.py and configs/ark_demo.py use it, with _base_/models/ark_swin-b.py (Ark's loss).
_base_ = './teacher_student.py'

ema_momentum = dict(type='cosine', start=0.9, end=1.0)

test_cfg = dict(type='TestLoop')  # the model's predict_on copy: the teacher
# The EMA after every dataset pass, with m at the fraction of training iterations done; the
# authors index their cosine by visits (it / (200 * 6)) - the same curve when the datasets are
# passed in equal time, and within one epoch (1/200 of training) of it otherwise.
custom_hooks = _base_.custom_hooks + [
    dict(type='TeacherEMAHook', momentum=ema_momentum, interval='visit'),
]
