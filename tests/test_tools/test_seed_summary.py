"""Mean +- std over seeds of per-dataset results tables (tools/analysis_tools/seed_summary.py)."""
import math

import pytest

from tool_scripts import load_tool

_module = load_tool('analysis_tools/seed_summary')
aggregate_over_seeds, nan_to_none, stats_cell = (
    _module.aggregate_over_seeds, _module.nan_to_none, _module.stats_cell)


def test_dataset_means_per_seed_then_mean_and_sample_std_over_seeds():
    rows = {'a': {
        0: {'x': {'Cls AUC': 60.0, 'Seg Dice': None}, 'y': {'Cls AUC': 80.0, 'Seg Dice': 50.0}},
        1: {'x': {'Cls AUC': 64.0, 'Seg Dice': None}, 'y': {'Cls AUC': 90.0, 'Seg Dice': 40.0}},
    }}
    out = aggregate_over_seeds(rows)['a']
    # per seed: the mean over the datasets that have the column
    assert out['per_seed'][0]['Cls AUC'] == 70.0 and out['per_seed'][1]['Cls AUC'] == 77.0
    assert out['per_seed'][0]['Seg Dice'] == 50.0 and out['per_seed'][0]['Loc mAP40'] is None
    cls = out['summary']['Cls AUC']
    assert cls['mean'] == 73.5 and cls['std'] == pytest.approx(math.sqrt(24.5)) and cls['n'] == 2
    assert out['summary']['Loc mAP40']['mean'] is None
    assert out['datasets']['y']['Seg Dice']['mean'] == 45.0
    assert stats_cell(cls, 2) == '73.50 ± 4.95'
    assert stats_cell(out['summary']['Loc mAP40'], 2) == '-'


def test_nan_seeds_are_left_out_and_counted():
    rows = {'b': {0: {'x': {'Cls AUC': float('nan')}}, 1: {'x': {'Cls AUC': 70.0}},
                  2: {'x': {'Cls AUC': 72.0}}}}
    cls = aggregate_over_seeds(rows)['b']['summary']['Cls AUC']
    assert cls['mean'] == 71.0 and cls['n'] == 2
    assert stats_cell(cls, 3) == '71.00 ± 1.41 (n=2)'
    assert nan_to_none({'v': [float('nan'), 1.0]}) == {'v': [None, 1.0]}
