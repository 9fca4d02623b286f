"""End to end: tools/train.py then tools/test.py on the demo config and tiny phantoms.

This is the README's demo at toy size: a full cycle over the 8 (dataset, task) pairs, an
evaluation, a checkpoint, then the test split's results table. The phantoms are written and
the dataset browsed in-process (their tools' ``main``), train and test run as commands.
"""
import json
import os.path as osp
import sys

import mmengine
import pytest

from data_converters.synthetic import main as write_phantoms
from fxmm.testing.cli import run_python
from tool_scripts import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'foundation_x_demo.py')

# 8 visits x 2 iterations at batch 4, small model: about a minute on 2 CPU cores
TINY = [
    'train_cfg.max_visits=8', 'train_cfg.val_interval=16',
    'train_dataloader.batch_size=4', 'train_dataloader.sampler.batch_size=4',
    'train_dataloader.sampler.iters_per_visit=2', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
    'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False', 'default_hooks.logger.interval=4',
    'param_scheduler.0.end=4', 'param_scheduler.1.begin=4',
]



@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp('demo')
    write_phantoms(['--out', str(cwd / 'data' / 'phantoms'), '--num-train', '8', '--num-val',
                    '4', '--num-test', '4', '--size', '64'])
    log = run_python([osp.join(ROOT, 'tools', 'train.py'), CONFIG, '--work-dir', 'work',
                '--cfg-options', *TINY], cwd)
    return cwd, log


def test_train_runs_every_pair_and_evaluates(trained):
    cwd, log = trained
    for pair in ('phantom_cls.cls', 'phantom_loc.loc', 'phantom_seg.seg', 'phantom_ptx.seg'):
        assert f'pair {pair}' in log
    val = json.loads((cwd / 'work' / 'val_results' / 'results.json').read_text())
    assert 'phantom_ptx.loc/mAP40' in json.dumps(val)
    assert (cwd / 'work' / 'iter_16.pth').is_file()


def test_test_writes_the_results_table(trained):
    cwd, _ = trained
    ckpt = (cwd / 'work' / 'last_checkpoint').read_text().strip()
    log = run_python([osp.join(ROOT, 'tools', 'test.py'), CONFIG, ckpt, '--work-dir', 'test',
                '--out', 'preds.pkl', '--cfg-options', *TINY], cwd)
    table = (cwd / 'test' / 'test_results' / 'results.md').read_text()
    for name in ('phantom_cls', 'phantom_loc', 'phantom_seg', 'phantom_ptx'):
        assert f'| {name} |' in table
    assert 'Loc mAP40' in table and 'Seg Dice' in table
    assert '### student' in table and '### teacher' in table
    assert 'test results' in log
    # TeacherStudentTestLoop: one dump per copy (the teacher's used to overwrite the student's)
    assert not (cwd / 'preds.pkl').exists()
    student, teacher = (mmengine.load(str(cwd / f'preds_{side}.pkl'))
                        for side in ('student', 'teacher'))
    assert len(student) == len(teacher) >= 4 * 4  # 4 test images of 4 datasets, >= 1 task
    assert [s['img_path'] for s in student] == [s['img_path'] for s in teacher]


def test_browse_dataset_saves_drawn_samples(trained, monkeypatch, capsys):
    cwd, _ = trained
    browse = load_tool('misc/browse_dataset')
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, 'argv', ['browse_dataset.py', CONFIG, '--output-dir', 'browse',
                                      '--num', '1'])
    browse.main()
    log = capsys.readouterr().out
    saved = sorted(p.parent.name for p in (cwd / 'browse').glob('*/000.png'))
    assert saved == sorted(['phantom_cls.cls', 'phantom_loc.cls', 'phantom_loc.loc',
                            'phantom_seg.cls', 'phantom_seg.seg', 'phantom_ptx.cls',
                            'phantom_ptx.loc', 'phantom_ptx.seg'])
    assert 'saved 8 images' in log
