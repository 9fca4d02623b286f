"""Tests of ResultsTableHook: the table's block titles say which model was tested (a
TeacherStudent's predict_on copy, a plain model's class, the TTA wrapper of tools/test.py
--tta), driven with a Mock runner around real tiny models."""
import os.path as osp
from unittest.mock import Mock

import pytest
from mmengine.registry import DefaultScope

import fxmm.models  # noqa: F401  registers
from fxmm.engine.hooks.results_table_hook import ResultsTableHook
from fxmm.models.tta import TenCropTTA
from fxmm.registry import MODELS
from fxmm.testing._utils import get_tiny_model_cfg

METRICS = {'nih.cls/AUC': 0.75, 'jsrt.seg/Dice': 0.5, 'score': 0.6}
BOTH = {f'{side}/{key}': value for side in ('student', 'teacher') for key, value in METRICS.items()}


@pytest.fixture(scope='module')
def teacher_student():
    with DefaultScope.overwrite_default_scope('fxmm'):
        return MODELS.build(dict(type='TeacherStudent', model=get_tiny_model_cfg(),
                                 predict_on='teacher'))


def titles(tmp_path, model, metrics, mode='test'):
    """The block titles of the results.md the hook writes for ``model``'s ``metrics``."""
    runner = Mock(rank=0, work_dir=str(tmp_path), model=model)
    getattr(ResultsTableHook(), f'after_{mode}_epoch')(runner, metrics=metrics)
    with open(osp.join(tmp_path, f'{mode}_results', 'results.md')) as f:
        return [line for line in f.read().splitlines() if line.startswith('### ')]


def test_titles_name_the_tested_copy_and_the_tta_wrapper(tmp_path, teacher_student):
    tta = TenCropTTA(teacher_student, crop_size=48)
    # tools/test.py --tta with TestLoop (configs/ark.py): the teacher, ten crops
    assert titles(tmp_path, tta, METRICS) == ['### teacher (TenCropTTA)']
    # ... with TeacherStudentTestLoop: both copies, ten crops each
    assert titles(tmp_path, tta, BOTH) == ['### student (TenCropTTA)',
                                           '### teacher (TenCropTTA)']
    assert titles(tmp_path, teacher_student, METRICS) == ['### teacher']
    assert titles(tmp_path, teacher_student, BOTH, mode='val') == ['### student', '### teacher']
    teacher_student.predict_on = 'student'
    try:
        assert titles(tmp_path, teacher_student, METRICS) == ['### student']
    finally:
        teacher_student.predict_on = 'teacher'
    assert titles(tmp_path, teacher_student.student, METRICS) == ['### FoundationX']


def test_nothing_is_written_off_rank_zero_or_without_metrics(tmp_path, teacher_student):
    hook = ResultsTableHook()
    hook.after_test_epoch(Mock(rank=1, work_dir=str(tmp_path), model=teacher_student), METRICS)
    hook.after_test_epoch(Mock(rank=0, work_dir=str(tmp_path), model=teacher_student), {})
    assert not osp.exists(osp.join(tmp_path, 'test_results'))
