"""Tests of CyclicTrainLoop: visit bookkeeping, max_visits, dataloader checks, and a resume
that continues the uninterrupted run exactly without loading the skipped data."""
import glob
import os
import random

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from fxmm.datasets.multi_task_dataset import MultiTaskDataset  # noqa: F401 (registers)
from fxmm.datasets.samplers.multi_task_sampler import MultiTaskSampler  # noqa: F401
from fxmm.engine.runner.cyclic_train_loop import CyclicTrainLoop
from fxmm.registry import MODELS
from toy_pairs import ToyPairDataset

SIZES = {'a.cls': 5, 'b.loc': 3, 'c.seg': 4}  # one-pass visits of 3, 2, 2 batches of 2


@MODELS.register_module(force=True)
class RecordingToyModelCTL(BaseModel):
    """A linear regressor that records the ``sample_idx`` of every training batch and one draw
    of each global RNG (python, numpy, torch) per training iteration."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.seen = []
        self.draws = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        pred = self.linear(torch.stack(inputs)).squeeze(1)  # (B, 2) -> (B, )
        if mode != 'loss':
            return pred
        self.seen.append([s.sample_idx for s in data_samples])
        self.draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
        target = torch.tensor([s.target for s in data_samples])
        return dict(loss=((pred - target)**2).mean())


def make_runner(work_dir, name, mode='cyclic', batch_size=2, sampler_batch_size=2,
                seed=7, resume_from=None, **train_cfg):
    pairs = [dict(dataset=dict(type='ToyPairDataset', num_samples=n,
                               name=pair.split('.')[0], start=10 * k),
                  task=pair.split('.')[1]) for k, (pair, n) in enumerate(SIZES.items())]
    return Runner(
        model=dict(type='RecordingToyModelCTL'),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=dict(type='MultiTaskDataset', pairs=pairs),
            sampler=dict(type='MultiTaskSampler', batch_size=sampler_batch_size, mode=mode),
            batch_size=batch_size, num_workers=0, collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='CyclicTrainLoop', **train_cfg),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=seed),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='fxmm')


@pytest.mark.parametrize('mode', ['cyclic', 'mixed'])
def test_resume_continues_the_uninterrupted_run(tmp_path, mode):
    full = make_runner(tmp_path / 'full', f'full_{mode}', mode=mode, max_iters=12)
    full.train()
    assert len(full.model.seen) == 12
    loop = full.train_loop
    assert isinstance(loop, CyclicTrainLoop)
    assert loop.current_visit == loop.sampler.schedule(11)

    ToyPairDataset.loaded = 0
    # no seed in the resumed run: the sampler's seed must come from the checkpoint
    resumed = make_runner(tmp_path / 'resumed', f'resumed_{mode}', mode=mode, seed=None,
                          resume_from=str(tmp_path / 'full' / 'iter_5.pth'), max_iters=12)
    visits = []

    class CurrentVisitRecorder(Hook):

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            visits.append(runner.train_loop.current_visit)

    resumed.register_hook(CurrentVisitRecorder())
    resumed.train()
    assert resumed.model.seen == full.model.seen[5:]
    # the resumed iterations lie where they lay in the visit schedule, and draw what they drew
    assert visits == [loop.sampler.schedule(i) for i in range(5, 12)]
    assert resumed.train_loop.current_visit == loop.current_visit
    assert resumed.model.draws == full.model.draws[5:]
    assert ToyPairDataset.loaded == 7 * 2  # the skipped batches were never loaded
    for name, param in full.model.state_dict().items():
        assert torch.equal(param, resumed.model.state_dict()[name]), name


def test_resume_with_other_visit_lengths_is_refused(tmp_path):
    """Another batch size (or number of GPUs) gives other visit lengths, so the saved
    iteration would land in another visit: the resume stops with an error saying why."""
    make_runner(tmp_path / 'full', 'full_for_refused', max_iters=6).train()
    resumed = make_runner(tmp_path / 'resumed', 'refused_resume', batch_size=1,
                          sampler_batch_size=1,
                          resume_from=str(tmp_path / 'full' / 'iter_5.pth'), max_iters=12)
    with pytest.raises(ValueError, match=r"checkpoint at iteration 5 was trained with \{"
                                         r"'pair_names': \['a.cls', 'b.loc', 'c.seg'\], "
                                         r"'visit_lens': \[3, 2, 2\], 'batch_size': 2, "
                                         r"'world_size': 1\}, this run has .*'visit_lens': "
                                         r"\[5, 3, 4\], 'batch_size': 1"):
        resumed.train()


def test_visits_are_tracked_and_logged(tmp_path):
    runner = make_runner(tmp_path, 'visits', max_visits=4)
    assert runner.train_loop.max_iters == 3 + 2 + 2 + 3
    visits = []

    class VisitRecorder(Hook):

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            info = runner.train_loop.current_visit
            pairs = {(s.dataset, s.task) for s in data_batch['data_samples']}
            assert pairs == {tuple(info.pair_name.split('.'))}  # it describes the batch
            visits.append((batch_idx, info.visit, info.iter_in_visit))

    runner.register_hook(VisitRecorder())
    runner.train()
    assert visits == [(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 1, 0), (4, 1, 1), (5, 2, 0),
                      (6, 2, 1), (7, 3, 0), (8, 3, 1), (9, 3, 2)]
    log_file, = glob.glob(os.path.join(runner.log_dir, '*.log'))
    with open(log_file) as f:
        log = f.read()
    for line in ('visit 0: pair a.cls (3 iters)', 'visit 1: pair b.loc (2 iters)',
                 'visit 2: pair c.seg (2 iters)', 'visit 3: pair a.cls (3 iters)'):
        assert line in log


@pytest.mark.parametrize('changes, error, match', [
    (dict(batch_size=3, max_iters=4), ValueError,
     r'batch_size \(3\) must equal the MultiTaskSampler batch_size \(2\)'),
    (dict(max_iters=4, max_visits=2), ValueError, 'exactly one of max_iters and max_visits'),
    (dict(), ValueError, 'exactly one of max_iters and max_visits'),
    (dict(mode='mixed', max_visits=2), ValueError, 'visits interleave'),
    (dict(mode='sequential', max_iters=4), ValueError, "'sequential'"),
])
def test_bad_train_setups_get_clear_errors(tmp_path, changes, error, match):
    runner = make_runner(tmp_path, f'bad_{len(changes)}', **changes)
    with pytest.raises(error, match=match):
        runner.train_loop


def test_needs_a_multi_task_sampler(tmp_path):
    runner = make_runner(tmp_path, 'default_sampler', max_iters=4)
    runner._train_dataloader['sampler'] = dict(type='DefaultSampler')
    with pytest.raises(TypeError, match="needs train_dataloader.sampler=dict"
                                        r"\(type='MultiTaskSampler'"):
        runner.train_loop
