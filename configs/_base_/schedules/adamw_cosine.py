# Foundation X optimisation (method.md): AdamW, weight decay 1e-4, lr 1e-4 with the backbone at
# 1e-5; leaf configs add the schedule (foundation_x.py: linear warm-up over `warmup_visits`,
# then cosine to 0 at `max_visits`).
base_lr = 1e-4
backbone_lr_mult = 0.1  # backbone lr = 1e-5
weight_decay = 1e-4

optim_wrapper = dict(
    # OptimWrapper that skips (and after 10 in a row, stops on) non-finite losses
    type='SafeOptimWrapper',
    # with a TeacherStudent model, only the student is optimised (the teacher follows by EMA)
    constructor='StudentOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=weight_decay),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=backbone_lr_mult)}),
)
