# The training wiring Foundation X and Ark share (method.md sections 1 and 2): the (dataset,
# task) pairs visited in a fixed cycle, a student and its EMA teacher in one TeacherStudent
# model, both evaluated and the best of each checkpointed. The leaf sets the length
# (train_cfg: max_visits, val_interval) and the checkpoint interval.
_base_ = '../default_runtime.py'

train_cfg = dict(type='CyclicTrainLoop')
val_cfg = dict(type='TeacherStudentValLoop')  # evaluates both, logs which is better
default_hooks = dict(
    checkpoint=dict(save_best=['student/score', 'teacher/score'], rule='greater'))
randomness = dict(seed=0)
