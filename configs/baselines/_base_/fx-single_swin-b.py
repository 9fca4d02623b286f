# The single-task baselines of the Foundation X paper (the numbers in brackets in method.md
# section 3): Foundation X's pretraining setup (configs/_base_/foundation_x_pretraining.py: the
# same model parts, data pipeline, optimiser and schedule) restricted to one (dataset, task)
# pair, trained alone, without Lock-Release or a teacher. A leaf config picks its pair by name
# ('<dataset>.<task>', e.g. 'siim.seg'):
#   model, train_dataloader, val_dataloader, test_dataloader = _base_.single_task['siim.seg']
_base_ = ['../../_base_/default_runtime.py', '../../_base_/foundation_x_pretraining.py']

# Foundation X's 3000 visits are 150 passes over each of its 20 pairs; a baseline makes as
# many passes over its one pair. The schedulers count cycles, which are passes here, so they
# stay as they are: one warm-up pass, then cosine to the last pass.
max_visits = _base_.max_visits // _base_.num_pairs
train_cfg = dict(type='CyclicTrainLoop', max_visits=max_visits, val_interval=_base_.val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=_base_.val_interval, save_best='score', rule='greater',
                    max_keep_ckpts=3))
randomness = dict(seed=0)

# pair name -> [model, train_dataloader, val_dataloader, test_dataloader] overrides that
# keep that pair of the pretraining only (its dataset with a head for that task only - the
# model builds no other task's head - and its dataset splits)
single_task = {
    f'{_base_[var].name}.{task}': [
        dict(datasets=dict(_delete_=True, **{
            _base_[var].name: dict(_base_.fx_model_datasets[_base_[var].name], tasks=[task])})),
        dict(dataset=dict(pairs=[_base_.train_dataloader.dataset.pairs[i]])),
        dict(dataset=dict(pairs=[_base_.val_dataloader.dataset.pairs[i]])),
        dict(dataset=dict(pairs=[_base_.test_dataloader.dataset.pairs[i]])),
    ]
    for i, (var, task) in enumerate(_base_.fx_pairs)
}
