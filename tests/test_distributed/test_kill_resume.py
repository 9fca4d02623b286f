"""Kill and resume: a training run SIGKILLed at a random iteration, resumed with ``--resume``,
killed again while saving a checkpoint, and resumed again, ends with exactly the weights,
teacher, optimiser and scheduler state of the uninterrupted run; ``last_checkpoint`` always
names a complete file; a truncated checkpoint gets an error naming it.

Toy demo model (BN UperNet, drop path 0.1, DINO de-noising with noise) on three pairs
(cls, loc, seg) in visits of 4 iterations, the first 3 of each loc/seg visit locked, the EMA
teacher updated at every visit end, a checkpoint every 6 iterations, deterministic torch, and
the demo's random crops and rotations (seeded per sample from its place in training, so they
resume exactly; docs/distributed.md).
"""
import json
import os
import os.path as osp
import re
import shutil
import sys
import zipfile

import numpy as np
import pytest
import torch

from _helpers import (TRAIN, finish, log_shows, make_phantoms, run, run_and_kill, start,
                      tiny_config)
from tool_scripts import load_tool

NUM_ITERS = 24  # 6 visits of 4 iterations: cls [0-3], loc [4-7], seg [8-11], cls, loc, seg
# checkpoints at 6 (in a locked phase), 12, 18 (locked), 24; mmengine formats the config with
# yapf for every checkpoint (seconds), so there are few
INTERVAL = 6
HANG_AT = 24  # the save of iter_24.pth is killed: the resume is from iter_18.pth
OPTIONS = {'default_hooks.checkpoint.interval': INTERVAL,
           'default_hooks.checkpoint.max_keep_ckpts': 2}


def _config(path, data, extra_hooks=()):
    return tiny_config(path, data, iters_per_visit=4, max_visits=6, lock_fraction=0.75,
                       norm='BN', drop_path_rate=0.1, exact_dn=False, augment=True,
                       pairs=['phantom_cls.cls', 'phantom_loc.loc', 'phantom_seg.seg'],
                       extra_hooks=extra_hooks, options=OPTIONS)


@pytest.fixture(scope='module')
def train_tool():
    """tools/train.py as a module."""
    return load_tool('train')


def _pointer_target(work_dir):
    """The file ``last_checkpoint`` names, checked to be a complete, loadable checkpoint."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        path = f.read().strip()
    assert zipfile.is_zipfile(path), path
    checkpoint = torch.load(path, map_location='cpu')  # torch's default weights_only=True
    assert checkpoint['meta']['iter'] == int(osp.basename(path)[5:-4])
    return path


@pytest.fixture(scope='module')
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('kill')
    data = make_phantoms(str(tmp / 'data'), num_train=6, num_eval=1)
    config = _config(str(tmp / 'tiny.py'), data)
    hanging = _config(str(tmp / 'tiny_hang.py'), data,
                      [dict(type='HangOnSaveHook', iteration=HANG_AT)])
    # the uninterrupted run beside the interrupted chain (each process has one thread)
    full = start(TRAIN, [config, '--work-dir', 'full'], str(tmp))

    work = str(tmp / 'resumed')
    # random (reported on failure), after the first checkpoint: resumes at 6 (locked) or 12
    kill_at = int(np.random.default_rng().integers(INTERVAL + 1, 3 * INTERVAL - 1))
    states = dict(kill_at=kill_at)
    run_and_kill(TRAIN, [config, '--work-dir', 'resumed'], str(tmp),
                 lambda: log_shows(work, f'Iter(train) [{kill_at:>2}/{NUM_ITERS}]'),
                 f'iteration {kill_at}')
    states['first_kill'] = _pointer_target(work)
    # resumed, then killed inside the atomic write of iter_24.pth
    run_and_kill(TRAIN, [hanging, '--work-dir', 'resumed', '--resume'], str(tmp),
                 lambda: osp.exists(osp.join(work, 'hanging')), f'the save of iter_{HANG_AT}')
    states['second_kill'] = _pointer_target(work)
    states['files'] = sorted(os.listdir(work))
    states['log'] = run(TRAIN, [config, '--work-dir', 'resumed', '--resume'], str(tmp))
    finish(full)
    return tmp, states


def test_resumed_run_ends_as_the_uninterrupted_one(chain):
    tmp, states = chain
    where = f'(first kill after iteration {states["kill_at"]})'
    full = torch.load(tmp / 'full' / f'iter_{NUM_ITERS}.pth', map_location='cpu')
    resumed = torch.load(tmp / 'resumed' / f'iter_{NUM_ITERS}.pth', map_location='cpu')
    weights = full['state_dict']
    assert weights.keys() == resumed['state_dict'].keys()
    assert any(k.startswith('teacher.') and 'running_mean' in k for k in weights)
    different = [k for k in weights if not torch.equal(weights[k], resumed['state_dict'][k])]
    assert not different, f'{where} weights differ: {different[:5]}'
    # AdamW moments and step counts, the learning-rate schedulers
    for a, b in zip(full['optimizer']['state'].values(),
                    resumed['optimizer']['state'].values()):
        assert all(torch.equal(a[key], b[key]) for key in ('step', 'exp_avg', 'exp_avg_sq'))
    assert full['param_schedulers'] == resumed['param_schedulers']
    assert full['meta']['iter'] == resumed['meta']['iter'] == NUM_ITERS


def test_resume_continues_the_same_batches_and_lock_state(chain):
    tmp, states = chain
    with open(tmp / 'full' / 'rank0_iters.json') as f:
        full = json.load(f)
    with open(tmp / 'resumed' / 'rank0_iters.json') as f:
        last_leg = json.load(f)  # the iterations of the last resumed run
    start = NUM_ITERS - len(last_leg)
    assert start == HANG_AT - INTERVAL  # iter_24.pth of the killed run never appeared
    assert last_leg == full[start:]
    # iteration 18 is the third of a loc visit: resumed inside the locked phase
    assert last_leg[0]['locked'] and not last_leg[1]['locked']
    assert 'lock phantom_loc.loc at iter 18 (visit 4)' in states['log']
    assert 'resumed epoch: 0, iter: 18' in states['log']
    assert 'train sampler restarted at iteration 18' in states['log']


def test_a_kill_while_saving_leaves_last_checkpoint_complete(chain, train_tool):
    tmp, states = chain
    work = tmp / 'resumed'
    # the killed save left its temporary file, never the target, and the pointer kept the
    # previous checkpoint
    assert states['second_kill'] == str(work / f'iter_{HANG_AT - INTERVAL}.pth')
    assert f'iter_{HANG_AT}.pth' not in states['files']
    assert any(name.startswith(f'.iter_{HANG_AT}.pth.') and name.endswith('.tmp')
               for name in states['files'])
    assert train_tool.find_resume_checkpoint(str(work)) == str(work / f'iter_{NUM_ITERS}.pth')


def _fake_run(work_dir, steps, truncated=(), pointer=None):
    """A work dir with complete ``iter_<step>.pth`` files, some cut short, and a pointer."""
    os.makedirs(work_dir, exist_ok=True)
    for step in steps:
        path = osp.join(work_dir, f'iter_{step}.pth')
        torch.save(dict(meta=dict(iter=step), state_dict={'w': torch.ones(64)}), path)
        if step in truncated:
            with open(path, 'r+b') as f:
                f.truncate(os.path.getsize(path) // 2)
    if pointer is not None:
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(pointer)
    return work_dir


def test_auto_resume_skips_a_broken_latest(tmp_path, train_tool):
    work = str(tmp_path / 'truncated')
    _fake_run(work, [4, 8], truncated=[8], pointer=osp.join(work, 'iter_8.pth'))
    # a save of iter_12.pth killed before its rename: atomic_write_bytes's '.<name>.tmp',
    # half written
    with open(osp.join(work, 'iter_4.pth'), 'rb') as f:
        half = f.read()[:osp.getsize(osp.join(work, 'iter_4.pth')) // 2]
    with open(osp.join(work, '.iter_12.pth.tmp'), 'wb') as f:
        f.write(half)
    assert train_tool.find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')
    # a half-written pointer, a pointer to a removed file
    for pointer in ('', osp.join(work, 'iter_')):
        _fake_run(work, [], pointer=pointer)
        assert train_tool.find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')
    # no pointer yet, but checkpoints: the newest complete one
    os.remove(osp.join(work, 'last_checkpoint'))
    assert train_tool.find_resume_checkpoint(work) == osp.join(work, 'iter_4.pth')
    # nothing to resume: a fresh start
    assert train_tool.find_resume_checkpoint(str(tmp_path / 'empty')) is None
    # only broken checkpoints: an error naming them
    broken = _fake_run(str(tmp_path / 'broken'), [4], truncated=[4],
                       pointer=osp.join(str(tmp_path / 'broken'), 'iter_4.pth'))
    with pytest.raises(RuntimeError, match='no complete checkpoint.*iter_4.pth'):
        train_tool.find_resume_checkpoint(broken)


def test_truncated_checkpoint_given_to_resume_is_named(tmp_path, chain, monkeypatch,
                                                        train_tool):
    tmp, _ = chain
    truncated = str(tmp_path / 'iter_24.pth')
    shutil.copy(tmp / 'full' / f'iter_{NUM_ITERS}.pth', truncated)
    with open(truncated, 'r+b') as f:
        f.truncate(os.path.getsize(truncated) - 1000)
    monkeypatch.setattr(sys, 'argv', ['train.py', str(tmp / 'tiny.py'), '--work-dir',
                                      str(tmp_path / 'work'), '--resume', truncated])
    with pytest.raises(ValueError, match=re.escape(f'checkpoint {truncated!r} is not a complete '
                                                   'zip-format torch checkpoint')):
        train_tool.main()
    monkeypatch.setattr(sys, 'argv', ['train.py', str(tmp / 'tiny.py'), '--resume',
                                      str(tmp_path / 'missing.pth')])
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        train_tool.main()
