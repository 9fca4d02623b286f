"""Tests of tools/analysis_tools/plot_curves.py on a synthetic mmengine scalar log: key
parsing and grouping, stale-loss dropping, the figure's layout, the CLI and its errors."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from tool_scripts import load_tool

pc = load_tool('analysis_tools/plot_curves')

TIMESTAMP = '20250101_000000'
# visits of 20 iterations: cls, loc, seg, cls, ... ; logged every 10 iterations
PAIR_LOSSES = {'cls': {'phantom_cls.cls.loss_bce': 1.0},
               'loc': {'phantom_ptx.loc.loss_bbox': 2.0, 'phantom_ptx.loc.loss_cls': 3.0},
               'seg': {'phantom_seg.seg.loss_dice': 4.0}}


def synthetic_records(with_visit=False):
    """Training lines as mmengine logs them (a pair outside its visit repeats its last
    value), plus validation lines at steps 60 and 120."""
    records, last = [], {}
    for step in range(10, 130, 10):
        visit = (step - 1) // 20
        task = ('cls', 'loc', 'seg')[visit % 3]
        for key, base in PAIR_LOSSES[task].items():
            last[key] = base / (1 + step / 100)
        record = dict(lr=1e-4, data_time=0.01, loss=sum(
            v for k, v in last.items() if k.split('.')[1] == task), time=0.1, iter=step,
            memory=100, step=step, **last)
        if with_visit:
            record['visit'] = visit
        records.append(record)
        if step % 60 == 0:
            records.append({'phantom_cls.cls/AUC': 0.5 + step / 1000, 'cls/mAUC': 0.5 + step / 1000,
                            'teacher/phantom_ptx.loc/mAP40': step / 200,
                            'student/phantom_ptx.loc/mAP40': step / 300,
                            'phantom_seg.seg/Dice': 0.7, 'seg/mDice': 0.7, 'data_time': 0.01,
                            'time': 0.1, 'step': step})
    return records


def write_work_dir(tmp_path, records):
    vis_dir = tmp_path / 'work' / TIMESTAMP / 'vis_data'
    vis_dir.mkdir(parents=True)
    with open(vis_dir / 'scalars.json', 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)
    return str(tmp_path / 'work')


def test_parse_key():
    assert pc.parse_key('phantom_ptx.loc.d0.loss_bbox') == pc.CurveKey(
        'phantom_ptx.loc.d0.loss_bbox', 'loss', 'loc', 'phantom_ptx', 'd0.loss_bbox', '')
    assert pc.parse_key('teacher/phantom_cls.cls/AUC') == pc.CurveKey(
        'teacher/phantom_cls.cls/AUC', 'metric', 'cls', 'phantom_cls', 'AUC', 'teacher/')
    assert pc.parse_key('seg/mDice') == pc.CurveKey('seg/mDice', 'metric', 'seg', None, 'mDice')
    for other in ('lr', 'loss', 'phantom_ptx.loc.acc', 'cls.loss_x', 'foo/bar/AUC'):
        assert pc.parse_key(other).kind == 'other', other


def test_group_keys():
    keys = {k for r in synthetic_records() for k in r}
    assert pc.group_keys(keys) == {
        'cls/loss': ['phantom_cls.cls.loss_bce'],
        'cls/metric': ['cls/mAUC', 'phantom_cls.cls/AUC'],
        'loc/loss': ['phantom_ptx.loc.loss_bbox', 'phantom_ptx.loc.loss_cls'],
        'loc/metric': ['student/phantom_ptx.loc/mAP40', 'teacher/phantom_ptx.loc/mAP40'],
        'seg/loss': ['phantom_seg.seg.loss_dice'],
        'seg/metric': ['phantom_seg.seg/Dice', 'seg/mDice'],
        'other': ['data_time', 'loss', 'lr', 'memory', 'time']}
    assert list(pc.group_keys(['lr', 'seg/mDice'])) == ['seg/metric', 'other']


def test_curve_sums_a_pair_and_drops_stale_steps():
    records = synthetic_records()
    loc = ['phantom_ptx.loc.loss_bbox', 'phantom_ptx.loc.loss_cls']
    steps, values = pc.curve(records, loc, drop_stale=True)
    # loc trains in visits 1 and 4: iterations 21-40 and 81-100
    np.testing.assert_array_equal(steps, [30, 40, 90, 100])
    np.testing.assert_allclose(values, [5 / (1 + s / 100) for s in steps])
    steps, _ = pc.curve(records, loc)  # without dropping: every step since it appeared
    np.testing.assert_array_equal(steps, np.arange(30, 130, 10))
    # a later record at the same step (a resumed run) replaces the earlier value
    steps, values = pc.curve(records + [{'step': 60, 'lr': 5.0}], ['lr'])
    assert values[list(steps).index(60)] == 5.0


def test_smooth_values():
    np.testing.assert_allclose(pc.smooth_values(np.array([1., 3., 5., 7.]), 2), [1, 2, 4, 6])
    np.testing.assert_array_equal(pc.smooth_values(np.array([1., 3.]), 1), [1, 3])


def test_visit_axis():
    assert pc.visit_axis(synthetic_records()) is None
    np.testing.assert_allclose(pc.visit_axis(synthetic_records(), 20)(np.array([20, 50])),
                               [1, 2.5])
    to_visit = pc.visit_axis(synthetic_records(with_visit=True), visit_len=1000)
    np.testing.assert_allclose(to_visit(np.array([10, 60, 120])), [0, 2, 5])


@pytest.mark.parametrize('visit_len,with_visit,columns', [(None, False, 1), (20, False, 2),
                                                          (None, True, 2)])
def test_plot_curves_layout(tmp_path, visit_len, with_visit, columns):
    work_dir = write_work_dir(tmp_path, synthetic_records(with_visit))
    records = pc.load_scalars([work_dir])
    assert len(records) == 14
    out = pc.plot_curves(records, str(tmp_path / 'curves.png'), smooth=2, visit_len=visit_len)
    img = cv2.imread(out)
    # 6 rows (3 tasks x losses/metrics), 640 x 320 px per panel at dpi 100
    assert img is not None and img.shape == (6 * 320, columns * 640, 3)
    assert img.std() > 10  # lines and text, not a blank canvas


def test_keys_patterns_and_nothing_to_plot(tmp_path):
    records = synthetic_records()
    out = pc.plot_curves(records, str(tmp_path / 'lr.png'), keys=['lr', '*.seg.*'], dpi=50)
    assert cv2.imread(out).shape == (2 * 160, 320, 3)  # seg losses + other, at dpi 50
    with pytest.raises(ValueError, match=r"nothing to plot.*\['nope\*'\].*logged keys: "
                       r"\[.*'lr'"):
        pc.plot_curves(records, str(tmp_path / 'x.png'), keys=['nope*'])
    with pytest.raises(ValueError, match='nothing to plot.*fxmm loss or metric keys'):
        pc.plot_curves([{'step': 1, 'lr': 0.1}], str(tmp_path / 'x.png'))
    with pytest.raises(ValueError, match='no record'):
        pc.plot_curves([], str(tmp_path / 'x.png'))
    assert not osp.exists(tmp_path / 'x.png')


def test_cli_default_out_and_errors(tmp_path):
    work_dir = write_work_dir(tmp_path, synthetic_records())
    assert pc.main([work_dir, '--per-key', '--dpi', '40']) == osp.join(work_dir, 'curves.png')
    assert cv2.imread(osp.join(work_dir, 'curves.png')).shape == (6 * 128, 256, 3)
    log = osp.join(work_dir, TIMESTAMP, 'vis_data', 'scalars.json')
    assert pc.default_out(log) == osp.join(osp.abspath(work_dir), 'curves.png')

    run_dir = osp.join(work_dir, TIMESTAMP)  # a run dir is read as well
    assert pc.main([run_dir, '--dpi', '40']) == osp.join(run_dir, 'curves.png')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit, match='no scalar log under'):
        pc.main([str(tmp_path / 'empty')])
    bad = tmp_path / 'bad.json'
    bad.write_text('{"step": 1}\n{oops\n')
    with pytest.raises(SystemExit, match=r'bad\.json:2: not a JSON line'):
        pc.main([str(bad), '--out', str(tmp_path / 'bad.png')])
