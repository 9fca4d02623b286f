# Foundation X's training method (method.md section 1) on top of the shared wiring: Lock-Release
# on the loc and seg visits, the teacher an EMA of the student once per visit, and a
# student-teacher consistency loss. configs/foundation_x.py and configs/foundation_x_demo.py
# use it; the leaf wraps its model as
#   model = dict(_delete_=True, type='TeacherStudent', model=student,
#                consistency_weight=_base_.consistency_weight)
_base_ = './teacher_student.py'

lock_tasks = ('loc', 'seg')   # Lock-Release on these tasks' visits (FX+ adds 'cls')
lock_fraction = 0.5     # locked share of each visit (shared modules frozen)
ema_momentum = 0.8      # teacher = m * teacher + (1 - m) * student
ema_interval = 'visit'  # 'visit' (the paper), 'iter' or a number of iterations
consistency_weight = 0.5  # loss = task losses + w * MSE(student, teacher features)

test_cfg = dict(type='TeacherStudentTestLoop')  # tests both, reports both
custom_hooks = _base_.custom_hooks + [
    # locks the modules each task's datasets share (FoundationX.shared_modules) of the student
    dict(type='LockReleaseHook', lock_tasks=lock_tasks, lock_fraction=lock_fraction),
    dict(type='TeacherEMAHook', momentum=ema_momentum, interval=ema_interval),
]
