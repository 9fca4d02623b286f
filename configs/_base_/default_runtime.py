# Runtime settings shared by every fxmm config.
default_scope = 'fxmm'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # atomic_local: a run killed while saving never leaves a truncated checkpoint
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=3,
                    save_last=True, backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# writes results.json / results.md (the paper-style table) after every evaluation
custom_hooks = [dict(type='ResultsTableHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='PairLogProcessor', window_size=10, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# DDP: the other tasks' heads are unused in a step
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
