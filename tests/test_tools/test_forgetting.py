"""Tests of tools/analysis_tools/forgetting.py on hand-written probe records: gains, drops per
foreign visit, drift means, the mean +- std over seeds, the report files."""
import json

import pytest

from tool_scripts import load_tool

fg = load_tool('analysis_tools/forgetting')

PAIRS = ('x.cls', 'x.seg', 'y.loc')  # N = 3: two foreign visits between own visits


def _write(run_dir, values, drift=0.01, extra_lines=()):
    """``values[pair][cycle] = (before, after)`` in 0..1, for the student."""
    run_dir.mkdir(parents=True)
    lines = []
    for i, pair in enumerate(PAIRS):
        metric = dict(cls='AUC', loc='mAP40', seg='Dice')[pair.split('.')[1]]
        for cycle, (before, after) in enumerate(values[pair]):
            visit = 3 * cycle + i
            for when, value in (('before', before), ('after', after)):
                lines.append(dict(kind='probe', visit=visit, cycle=cycle, trained=pair,
                                  pair=pair, when=when, copy='student', metric=metric,
                                  value=value, num_samples=4))
            lines.append(dict(kind='drift', visit=visit, cycle=cycle, trained=pair,
                              task=pair.split('.')[1], copy='student', group='backbone',
                              relative=drift * (i + 1), norm=1.))
    with open(run_dir / fg.RECORDS, 'w') as f:
        f.writelines(json.dumps(line) + '\n' for line in lines)
        f.writelines(extra_lines)
    return str(run_dir)


# three cycles; x.cls learns 0.1 per visit and loses 0.06 in between, y.loc loses nothing
VALUES = {'x.cls': [(0.5, 0.6), (0.54, 0.64), (0.58, 0.68)],
          'x.seg': [(0.2, 0.5), (0.4, 0.7), (0.7, 0.8)],
          'y.loc': [(0.0, 0.1), (0.1, 0.2), (0.2, 0.3)]}


def test_run_summary_gain_drop_and_drift(tmp_path):
    run = _write(tmp_path / 'r', VALUES)
    summary = fg.run_summary(*fg.read_records(run))['student']
    pairs = summary['pairs']
    assert pairs['x.cls']['gain'] == pytest.approx([10., 10., 10.])
    # drops of cycles 0 and 1 (cycle 2 has no next 'before')
    assert pairs['x.cls']['drop'][:2] == pytest.approx([6., 6.])
    assert pairs['x.seg']['drop'][:2] == pytest.approx([10., 0.])
    assert pairs['y.loc']['drop'][:2] == pytest.approx([0., 0.])
    assert summary['num_drops'] == 6
    assert summary['drop'] == pytest.approx((6 + 6 + 10 + 0 + 0 + 0) / 6)
    assert summary['drop_per_visit'] == pytest.approx(22 / 6 / 2)  # two foreign visits
    assert summary['drop/cls'] == pytest.approx(3.) and summary['drop/loc'] == 0.
    assert summary['gain'] == pytest.approx((30 + 70 + 30) / 9)
    assert summary['drift/backbone/cls'] == pytest.approx(1.)  # 0.01 -> 1 %
    assert summary['drift/backbone/loc'] == pytest.approx(3.)


def test_last_record_wins_and_broken_lines_are_skipped(tmp_path):
    again = json.dumps(dict(kind='probe', visit=0, cycle=0, trained='x.cls', pair='x.cls',
                            when='after', copy='student', metric='AUC', value=0.9,
                            num_samples=4)) + '\n'
    run = _write(tmp_path / 'r', VALUES, extra_lines=[again, '{"kind": "pro'])
    summary = fg.run_summary(*fg.read_records(run))['student']
    assert summary['pairs']['x.cls']['gain'][0] == pytest.approx(40.)
    with pytest.raises(FileNotFoundError, match='ForgettingProbeHook'):
        fg.read_records(str(tmp_path))


def test_report_over_seeds(tmp_path):
    shifted = {p: [(b, a - 0.02) for b, a in v] for p, v in VALUES.items()}
    runs = {'joint': [_write(tmp_path / 'b0', VALUES), _write(tmp_path / 'b1', shifted)],
            '+ teacher': [_write(tmp_path / 'd0', VALUES, drift=0.002)]}
    result = fg.report(runs, str(tmp_path / 'out'), 'python forgetting.py ...')
    joint = result['joint']['student']
    # seed 1's after values are 2 points lower: gains -2, drops -2
    assert joint['drop']['mean'] == pytest.approx(22 / 6 - 1)
    assert joint['drop']['std'] == pytest.approx(2 ** 0.5)
    assert result['+ teacher']['student']['drop']['std'] is None  # one run
    markdown = (tmp_path / 'out' / 'forgetting.md').read_text()
    assert '| joint (2) | student | 13.44 ± 1.41 | 1.333 ± 0.707 | 2.500 ± 0.707 |' in markdown
    assert '| + teacher | student | 0.200 | 0.600 | 0.400 |' in markdown  # drift: cls, loc, seg
    assert json.loads((tmp_path / 'out' / 'forgetting.json').read_text())['joint']['runs'] \
        == runs['joint']
    for name in ('forgetting_curves.png', 'forgetting_drift.png'):
        assert (tmp_path / 'out' / name).stat().st_size > 1000


def test_cli_labels(tmp_path):
    run = _write(tmp_path / 'r', VALUES)
    result = fg.main([f'joint={run}', '--out', str(tmp_path / 'out')])
    assert list(result) == ['joint']
    with pytest.raises(SystemExit, match='LABEL=RUN_DIR'):
        fg.main([run])
