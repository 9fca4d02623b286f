"""Tests of ForgettingProbeHook: in a real cyclic run of the demo's teacher-student model on
phantoms, the probes come before and after every visit with the values a test run gives, the
drift is that of the weights, and training is the same with and without the hook."""
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.runner import Runner

from data_converters.synthetic import generate_phantom_datasets
from fxmm.engine.hooks.forgetting_probe_hook import ForgettingProbeHook, default_drift_groups
from fxmm.utils import register_all_modules

DEMO = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs', 'foundation_x_demo.py')
PAIRS = ('phantom_cls.cls', 'phantom_seg.seg')
NUM_PROBE = 4
SIZE = 64


class LossRecorder(Hook):
    """Keeps every iteration's loss and, at each visit's end, the student's shared weights."""
    priority = 'LOWEST'

    def __init__(self):
        self.losses, self.weights = [], {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        info = runner.train_loop.current_visit
        if info.iter_in_visit == 0:
            self.weights[('start', info.visit)] = self._backbone(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(float(outputs['loss']))
        info = runner.train_loop.current_visit
        if info.iter_in_visit == info.visit_len - 1:
            self.weights[('end', info.visit)] = self._backbone(runner)

    @staticmethod
    def _backbone(runner):
        return torch.cat([p.detach().reshape(-1).clone()
                          for p in runner.model.student.backbone.parameters()])


def _config(root, work_dir, probe):
    cfg = Config.fromfile(DEMO)
    names = [f'{d}.{t}' for d, t in cfg.phantom_pairs]

    def select(loader):
        return [dict(pair, dataset=dict(pair.dataset, data_root=osp.join(root, name.split('.')[0])))
                for name, pair in zip(names, loader.dataset.pairs) if name in PAIRS]

    train_pairs, val_pairs = select(cfg.train_dataloader), select(cfg.val_dataloader)
    for pair in train_pairs + val_pairs:  # 64 px instead of the demo's 128: 4x less work
        for transform in pair['dataset']['pipeline']:
            if 'scale' in transform:
                transform['scale'] = (SIZE, SIZE)
    cfg.model.model.backbone.img_size = SIZE
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.sampler.update(batch_size=2, iters_per_visit=2)
    cfg.train_dataloader.dataset.pairs = train_pairs
    cfg.train_cfg = dict(type='CyclicTrainLoop', max_visits=2, val_interval=1000)
    for key in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg', 'test_dataloader',
                'test_evaluator'):
        cfg[key] = None
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000, save_best=None)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    if probe:
        cfg.custom_hooks.append(dict(
            type='ForgettingProbeHook', num_samples=NUM_PROBE, batch_size=3,
            dataset=dict(type='MultiTaskDataset', pairs=val_pairs)))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'forgetting_probe_{probe}'
    return cfg


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The same 2-visit run (2 pairs x 2 iterations) with and without the hook."""
    register_all_modules()
    tmp = tmp_path_factory.mktemp('probe')
    generate_phantom_datasets(str(tmp / 'ph'), num_train=4, num_val=6, num_test=1, size=SIZE,
                              datasets=['phantom_cls', 'phantom_seg'])
    out = {}
    for probe in (True, False):
        runner = Runner.from_cfg(_config(str(tmp / 'ph'), tmp / f'work_{probe}', probe))
        recorder = LossRecorder()
        runner.register_hook(recorder)
        runner.train()
        out[probe] = (runner, recorder)
    return out


def _records(runner):
    with open(osp.join(runner.work_dir, 'forgetting.jsonl')) as f:
        return [json.loads(line) for line in f]


def test_probes_do_not_change_training(runs):
    with_probe, without = runs[True][1], runs[False][1]
    assert len(with_probe.losses) == 4
    assert with_probe.losses == without.losses  # bit for bit


def test_probe_before_and_after_every_visit_on_both_copies(runs):
    runner, _ = runs[True]
    probes = [r for r in _records(runner) if r['kind'] == 'probe']
    keys = [(r['visit'], r['when'], r['copy']) for r in probes]
    assert keys == [(v, w, c) for v in range(2) for w in ('before', 'after')
                    for c in ('student', 'teacher')]
    for r in probes:
        assert r['pair'] == r['trained'] == PAIRS[r['visit'] % 2]
        assert r['cycle'] == r['visit'] // 2 and r['num_samples'] == NUM_PROBE
        assert r['metric'] == {'cls': 'AUC', 'seg': 'Dice'}[r['pair'].split('.')[1]]
        assert 0. <= r['value'] <= 1. or math.isnan(r['value'])
    by_key = {(r['visit'], r['when'], r['copy']): r['value'] for r in probes}
    # before any training the teacher is the student's hard copy
    assert by_key[(0, 'before', 'student')] == by_key[(0, 'before', 'teacher')]


def test_probe_value_is_the_metric_of_a_test_run(runs, tmp_path):
    """The last 'after' probe of the seg pair equals MultiTaskMetric on the same images."""
    runner, _ = runs[True]
    hook = next(h for h in runner.hooks if isinstance(h, ForgettingProbeHook))
    records = [r for r in _records(runner) if r['kind'] == 'probe']
    last = [r for r in records if r['visit'] == 1 and r['when'] == 'after']
    again = hook.probe(runner, 1)
    assert [(r['copy'], r['value']) for r in last] == [(r['copy'], r['value']) for r in again]
    # Dice over NUM_PROBE images from the evaluator directly, student copy
    model = runner.model
    model.predict_on = 'student'
    model.eval()
    batch = [hook.dataset[i] for i in hook.pair_indices[1]]
    outputs = model.val_step(pseudo_collate(batch))
    evaluator = runner.build_evaluator(dict(type='MultiTaskMetric'))
    evaluator.dataset_meta = hook.dataset.metainfo
    evaluator.process(data_samples=outputs, data_batch=None)
    dice = evaluator.evaluate(NUM_PROBE)['phantom_seg.seg/Dice']
    assert again[0]['value'] == pytest.approx(dice, abs=1e-9)


def test_drift_is_the_relative_change_of_the_shared_weights(runs):
    runner, recorder = runs[True]
    drifts = [r for r in _records(runner) if r['kind'] == 'drift']
    # the demo model has all three shared groups; each visit records them for both copies
    assert {r['group'] for r in drifts} == set(default_drift_groups(runner.model.student)) == {
        'backbone', 'loc', 'seg'}
    assert len(drifts) == 2 * 3 * 2
    for r in (r for r in drifts if r['group'] == 'backbone' and r['copy'] == 'student'):
        start, end = recorder.weights[('start', r['visit'])], recorder.weights[('end', r['visit'])]
        expected = float((end - start).norm() / start.norm())
        assert expected > 0 and r['relative'] == pytest.approx(expected, rel=1e-5)
        assert r['task'] == r['trained'].split('.')[1]
    # a cls visit does not train the loc encoder: no drift there; the seg visit moves the neck
    loc = {r['visit']: r['relative'] for r in drifts if r['group'] == 'loc' and
           r['copy'] == 'student'}
    seg = {r['visit']: r['relative'] for r in drifts if r['group'] == 'seg' and
           r['copy'] == 'student'}
    assert loc == {0: 0., 1: 0.}
    assert seg[1] > 0 and seg[0] == 0.


def test_configuration_errors():
    with pytest.raises(ValueError, match='num_samples'):
        ForgettingProbeHook(dataset={}, num_samples=0)
    with pytest.raises(ValueError, match='cycle_interval'):
        ForgettingProbeHook(dataset={}, cycle_interval=0)
