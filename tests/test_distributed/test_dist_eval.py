"""Distributed evaluation: ``tools/test.py`` in two processes (torchrun, gloo on the CPU) gives
the metrics of one process, and ``--out`` holds every test sample once, with uneven shards
(5 images per pair, batches of 2: each rank's last batch of a pair is padding)."""
import json
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config

from _helpers import TEST, make_phantoms, run, tiny_config
from fxmm.registry import MODELS

NUM_TEST = 5  # per dataset; 8 pairs
BATCH = 2


@pytest.fixture(scope='module')
def evaluated(tmp_path_factory):
    """A checkpoint of the toy demo model, tested in two processes and in one."""
    tmp = tmp_path_factory.mktemp('dist_eval')
    data = make_phantoms(str(tmp / 'data'), num_train=2, num_eval=NUM_TEST)
    config = tiny_config(str(tmp / 'tiny.py'), data, batch_size=BATCH)
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    model.init_weights()
    checkpoint = str(tmp / 'model.pth')
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), checkpoint)
    logs = {}
    for name, nproc in (('dist', 2), ('single', 1)):
        logs[name] = run(TEST, [config, checkpoint, '--work-dir', name, '--out',
                                f'{name}.pkl'], str(tmp), nproc=nproc)
    return tmp, logs


def _metrics(tmp, name):
    with open(tmp / name / 'test_results' / 'results.json') as f:
        return json.load(f)


def test_two_processes_give_the_metrics_of_one(evaluated):
    tmp, logs = evaluated
    assert 'Distributed launcher: pytorch' in logs['dist']
    dist, single = _metrics(tmp, 'dist'), _metrics(tmp, 'single')
    assert dist.keys() == single.keys()
    for pair in ('phantom_cls.cls/AUC', 'phantom_loc.loc/mAP40', 'phantom_ptx.seg/Dice'):
        assert f'student/{pair}' in dist and f'teacher/{pair}' in dist
    for key, value in single.items():
        if value is None:  # nan
            assert dist[key] is None, key
        else:
            assert dist[key] == pytest.approx(value, abs=1e-6), key
    # the sampler padded every pair to whole rounds of batches; the metric dropped exactly
    # the repeats (per pair: 2 rounds of 2 x 2 = 8 slots for 5 samples in two processes,
    # 3 batches of 2 = 6 in one)
    assert 'dropped 24 repeated samples' in logs['dist']
    assert 'dropped 8 repeated samples' in logs['single']


def _records(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def _assert_close(a, b, where):
    """Nested predictions equal: tensors/arrays within float tolerance, the rest exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_close(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, (torch.Tensor, np.ndarray)):
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64),
                                   np.asarray(b, dtype=np.float64), atol=1e-4, err_msg=where)
    else:
        assert a == b, where


@pytest.mark.parametrize('copy', ['student', 'teacher'])
def test_out_holds_every_sample_once_in_single_process_order(evaluated, copy):
    tmp, _ = evaluated
    # a TeacherStudent model: tools/test.py --out X.pkl writes X_student.pkl and X_teacher.pkl
    assert not (tmp / 'dist.pkl').exists()
    dist, single = _records(tmp / f'dist_{copy}.pkl'), _records(tmp / f'single_{copy}.pkl')
    keys = [(r['dataset'], r['task'], r['sample_idx']) for r in dist]
    assert len(keys) == len(set(keys)) == 8 * NUM_TEST
    assert keys == [(r['dataset'], r['task'], r['sample_idx']) for r in single]
    assert sorted(k[2] for k in keys) == list(range(8 * NUM_TEST))  # the global indices
    for record, expected in zip(dist, single):
        _assert_close(record, expected, '{dataset}.{task}#{sample_idx}'.format(**record))
