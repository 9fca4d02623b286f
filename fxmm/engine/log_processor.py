"""Training logs that show the (dataset, task) pair being trained, not every pair's last loss."""
from mmengine.runner import LogProcessor

from fxmm.registry import LOG_PROCESSORS


@LOG_PROCESSORS.register_module()
class PairLogProcessor(LogProcessor):
    """mmengine's :class:`LogProcessor` for cyclic multi-task training.

    Losses are logged as ``'<dataset>.<task>.<loss>'``; mmengine's message hub keeps the last
    value of every key, so a plain log line repeats the stale losses of all other pairs. In
    training, this processor keeps only the keys of the pair of the current iteration and adds
    ``visit`` (the visit number of :class:`~fxmm.engine.runner.CyclicTrainLoop`), which the
    curve plotter (``tools/analysis_tools/plot_curves.py``) uses as its x axis. Validation and
    test logs are unchanged.
    """

    def _collect_scalars(self, custom_cfg, runner, mode, reserve_prefix=False):
        tag = super()._collect_scalars(custom_cfg, runner, mode, reserve_prefix)
        visit = getattr(runner.train_loop, 'current_visit', None) if mode == 'train' else None
        if visit is None:
            return tag
        pairs = set(runner.train_loop.sampler.dataset.pair_names)
        prefix = f'{mode}/' if reserve_prefix else ''
        for key in list(tag):
            pair = '.'.join(key[len(prefix):].split('.')[:2])
            if pair in pairs and pair != visit.pair_name:
                del tag[key]
        tag[f'{prefix}visit'] = visit.visit
        return tag
