"""Tests of fxmm.evaluation.results_table."""
import json
import math
import os

import pytest

from fxmm.evaluation.results_table import results_table, save_results

METRICS = {
    'phantom_cls.cls/AUC': 0.875,
    'phantom_cls.cls/AUC_Atelectasis': 0.75,
    'phantom_ptx.cls/AUC': 0.912345,
    'phantom_ptx.loc/mAP40': 1.0,
    'phantom_ptx.loc/mAP50': 0.505,
    'phantom_ptx.seg/Dice': float('nan'),
    'phantom_seg.seg/Dice': 2 / 3,
    'cls/mAUC': 0.89,
    'score': 0.8,
}
STUDENT_TABLE = [
    '### student',
    '',
    '| Dataset | Cls AUC | Loc mAP40 | Seg Dice |',
    '|---|---:|---:|---:|',
    '| phantom_cls | 87.50 | - | - |',
    '| phantom_ptx | 91.23 | 100.00 | nan |',
    '| phantom_seg | - | - | 66.67 |',
]


def test_layout_rows_datasets_columns_tasks_in_percent():
    markdown, rows = results_table(METRICS)
    assert markdown.splitlines() == STUDENT_TABLE
    assert list(rows) == ['student']
    assert rows['student']['phantom_ptx']['Loc mAP40'] == pytest.approx(100.0)
    assert rows['student']['phantom_ptx']['Cls AUC'] == pytest.approx(91.2345)
    assert math.isnan(rows['student']['phantom_ptx']['Seg Dice'])
    assert rows['student']['phantom_cls']['Seg Dice'] is None


def test_teacher_block_follows_the_unprefixed_one():
    metrics = dict(METRICS, **{'teacher/phantom_seg.seg/Dice': 0.7, 'teacher/score': 0.7})
    markdown, rows = results_table(metrics, model_name='FX')
    assert list(rows) == ['FX', 'teacher']
    assert rows['teacher'] == {
        'phantom_seg': {'Cls AUC': None, 'Loc mAP40': None, 'Seg Dice': pytest.approx(70.0)}}
    blocks = markdown.split('\n\n### ')
    assert blocks[0].splitlines()[0] == '### FX'
    assert blocks[1].splitlines()[0] == 'teacher'
    assert blocks[1].splitlines()[-1] == '| phantom_seg | - | - | 70.00 |'


def test_save_results_writes_json_and_markdown(tmp_path):
    out_dir = tmp_path / 'val_results'
    json_path, md_path = save_results(METRICS, str(out_dir))
    assert sorted(os.listdir(out_dir)) == ['results.json', 'results.md']  # no temp files
    with open(json_path) as f:
        saved = json.load(f)
    assert saved['phantom_ptx.seg/Dice'] is None  # nan -> null (valid JSON)
    assert saved['phantom_seg.seg/Dice'] == pytest.approx(2 / 3)
    assert set(saved) == set(METRICS)
    with open(md_path) as f:
        assert f.read().splitlines() == STUDENT_TABLE
    save_results(dict(METRICS, score=0.9), str(out_dir))  # overwrites in place
    with open(json_path) as f:
        assert json.load(f)['score'] == 0.9


def test_prefixed_blocks_keep_their_order_whatever_the_unprefixed_name():
    metrics = {f'{side}/phantom_seg.seg/Dice': 0.5 for side in ('student', 'teacher')}
    markdown, rows = results_table(metrics, model_name='teacher', wrapper='TenCropTTA')
    assert list(rows) == ['student', 'teacher']
    assert [line for line in markdown.splitlines() if line.startswith('###')] == [
        '### student (TenCropTTA)', '### teacher (TenCropTTA)']
