"""Tests of TeacherStudentValLoop / TeacherStudentTestLoop (both copies evaluated, prefixed
metrics equal to each copy evaluated alone, also under tools/test.py --tta's TenCropTTA) and one
tiny real training run with CyclicTrainLoop + TeacherEMAHook +
TeacherStudentValLoop + CheckpointHook(save_best=['student/score', 'teacher/score'])."""
import glob
import os
import os.path as osp
from unittest.mock import Mock

import pytest
import torch
import mmengine
from mmengine.dataset import BaseDataset, pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, TestLoop, ValLoop
from torch.utils.data import DataLoader

import fxmm.datasets.multi_task_dataset  # noqa: F401  registers
import fxmm.datasets.samplers.multi_task_sampler  # noqa: F401
import fxmm.engine.hooks.teacher_ema_hook  # noqa: F401
import fxmm.engine.runner.cyclic_train_loop  # noqa: F401
import fxmm.evaluation.metrics.multi_task_metric  # noqa: F401
import fxmm.models.data_preprocessors.cxr_data_preprocessor  # noqa: F401
import fxmm.models.foundation_x  # noqa: F401
import fxmm.models.heads.multi_cls_head  # noqa: F401
import fxmm.models.heads.multi_seg_head  # noqa: F401
import fxmm.models.necks.shared_upernet  # noqa: F401
import fxmm.models.teacher_student  # noqa: F401
from fxmm.datasets.multi_task_dataset import MultiTaskDataset
from fxmm.datasets.samplers.multi_task_sampler import MultiTaskSampler
from fxmm.engine.runner.teacher_student_val_loop import (TeacherStudentTestLoop,
                                                        TeacherStudentValLoop)
from fxmm.evaluation.metrics.multi_task_metric import MultiTaskDumpResults, MultiTaskMetric
from fxmm.models.tta import TenCropTTA
from fxmm.registry import DATASETS, MODELS
from fxmm.testing._utils import demo_cxr_inputs, get_tiny_model_cfg

CLASSES = dict(nih=dict(cls_classes=['Atelectasis', 'Cardiomegaly', 'Effusion']),
               jsrt=dict(seg_classes=['heart', 'left lung', 'right lung']))


@DATASETS.register_module(force=True)
class PackedToyCXRDataset(BaseDataset):
    """``num_samples`` packed 64 px images of one (dataset, task) pair, as CXRDataset +
    PackCXRInputs give; cls labels alternate so that every class has both values."""

    def __init__(self, name: str, task: str, num_samples: int, **kwargs):
        self.name, self.task, self.num_samples = name, task, num_samples
        super().__init__(serialize_data=False, **kwargs)

    def load_data_list(self):
        self._metainfo.update(dataset=self.name, **CLASSES[self.name])
        return [dict(idx=i) for i in range(self.num_samples)]

    def prepare_data(self, idx):
        data = demo_cxr_inputs(1, 64, self.task, self.name, seed=idx, num_cls=3, num_seg=3)
        sample = data['data_samples'][0]
        if self.task == 'cls':
            sample.gt_cls.label = torch.tensor([(idx + k) % 2 for k in range(3)],
                                               dtype=torch.float32)
        return dict(inputs=data['inputs'][0], data_samples=sample)


def pairs(num_samples=4):
    return [dict(dataset=dict(type='PackedToyCXRDataset', name=name, num_samples=num_samples),
                 task=task) for name, task in (('nih', 'cls'), ('jsrt', 'seg'))]


def model_cfg():
    return dict(type='TeacherStudent', model=get_tiny_model_cfg(), consistency_weight=0.5)


@pytest.fixture
def fxmm_scope():
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


def teacher_student_and_loader():
    """A tiny TeacherStudent whose teacher differs from its student, and a sequential test
    loader of 4 nih.cls and 4 jsrt.seg samples in batches of 2."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(model_cfg())
        model.init_weights()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.teacher.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator))
    dataset = MultiTaskDataset(pairs(4))
    dataloader = DataLoader(dataset, batch_size=2, collate_fn=pseudo_collate,
                            sampler=MultiTaskSampler(dataset, 2, mode='sequential'))
    return model, dataloader


def test_both_copies_are_evaluated_as_if_alone(fxmm_scope):
    model, dataloader = teacher_student_and_loader()
    runner = Mock()
    runner.model = model

    def evaluate(loop_type, **kwargs):
        return loop_type(runner, dataloader, Evaluator([MultiTaskMetric()]), **kwargs).run()

    metrics = evaluate(TeacherStudentValLoop)
    assert model.predict_on == 'student'  # restored
    runner.call_hook.assert_any_call('after_val_epoch', metrics=metrics)
    alone = {}
    for side in ('student', 'teacher'):
        model.predict_on = side
        alone[side] = evaluate(ValLoop)
    model.predict_on = 'student'
    assert {'score', 'nih.cls/AUC', 'jsrt.seg/Dice'} <= set(alone['student'])
    assert set(metrics) == {f'{side}/{key}' for side in alone for key in alone[side]}
    for side, side_metrics in alone.items():
        for key, value in side_metrics.items():
            assert metrics[f'{side}/{key}'] == pytest.approx(value), (side, key)
    assert metrics['student/score'] != pytest.approx(metrics['teacher/score'])
    loop = TeacherStudentValLoop(runner, dataloader, Evaluator([MultiTaskMetric()]))
    better = 'student' if metrics['student/score'] > metrics['teacher/score'] else 'teacher'
    assert loop.better(metrics) == better
    assert loop.better({'student/score': 0.5, 'teacher/score': 0.5}) == 'teacher'
    assert loop.better({'student/score': 0.5}) is None
    less = TeacherStudentValLoop(runner, dataloader, Evaluator([MultiTaskMetric()]),
                                 compare_key='loss', rule='less')
    assert less.better({'student/loss': 0.1, 'teacher/loss': 0.2}) == 'student'
    with pytest.raises(ValueError, match='rule must be one of'):
        TeacherStudentValLoop(runner, dataloader, Evaluator([MultiTaskMetric()]), rule='max')
    runner.model = model.student
    with pytest.raises(TypeError, match='needs a model with a `predict_on` switch'):
        loop.run()



def test_test_loop_tests_both_copies_under_tta(fxmm_scope):
    """tools/test.py --tta wraps the TeacherStudent in TenCropTTA: the loop switches the
    wrapped model's copy and gives the metrics TestLoop gives on each copy."""
    model, dataloader = teacher_student_and_loader()
    runner = Mock()
    runner.model = TenCropTTA(model, crop_size=48)

    def evaluate(loop_type):
        return loop_type(runner, dataloader, Evaluator([MultiTaskMetric()])).run()

    metrics = evaluate(TeacherStudentTestLoop)
    assert model.predict_on == 'student'  # restored
    runner.call_hook.assert_any_call('after_test_epoch', metrics=metrics)
    for side in ('student', 'teacher'):
        model.predict_on = side
        alone = evaluate(TestLoop)
        assert set(metrics) >= {f'{side}/{key}' for key in alone}
        for key, value in alone.items():
            assert metrics[f'{side}/{key}'] == pytest.approx(value), (side, key)
    assert metrics['student/nih.cls/AUC'] != pytest.approx(metrics['teacher/nih.cls/AUC'])



def test_test_loop_dumps_each_copy_to_its_own_file(fxmm_scope, tmp_path):
    """tools/test.py --out preds.pkl: preds_student.pkl and preds_teacher.pkl, each what
    TestLoop dumps for that copy alone (the teacher used to overwrite the student's file)."""
    model, dataloader = teacher_student_and_loader()
    runner = Mock()
    runner.model = model

    def dump(loop_type, path):
        evaluator = Evaluator([MultiTaskMetric(), MultiTaskDumpResults(out_file_path=path)])
        loop_type(runner, dataloader, evaluator).run()
        return evaluator.metrics[1]

    out = str(tmp_path / 'both' / 'preds.pkl')
    assert dump(TeacherStudentTestLoop, out).out_file_path == out  # restored
    assert sorted(os.listdir(tmp_path / 'both')) == ['preds_student.pkl', 'preds_teacher.pkl']
    scores = {}
    for side in ('student', 'teacher'):
        model.predict_on = side
        dump(TestLoop, str(tmp_path / f'{side}_alone.pkl'))
        both = mmengine.load(str(tmp_path / 'both' / f'preds_{side}.pkl'))
        alone = mmengine.load(str(tmp_path / f'{side}_alone.pkl'))
        assert len(both) == len(alone) == 8  # 4 nih.cls + 4 jsrt.seg samples
        scores[side] = torch.stack([s['pred_cls']['score'] for s in both if 'pred_cls' in s])
        torch.testing.assert_close(
            scores[side], torch.stack([s['pred_cls']['score'] for s in alone if 'pred_cls' in s]))
    model.predict_on = 'student'
    assert not torch.allclose(scores['student'], scores['teacher'])


class EMARecorder(Hook):
    """Records a teacher and a student weight around the EMA hook's after_train_iter."""

    def __init__(self, priority: str):
        self.priority, self.records = priority, []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = runner.model
        visit = runner.train_loop.current_visit
        self.records.append(dict(
            iter=runner.iter, last_of_visit=visit.iter_in_visit == visit.visit_len - 1,
            teacher=model.teacher.cls_head.heads['nih'].weight.clone(),
            student=model.student.cls_head.heads['nih'].weight.clone()))


def make_runner(work_dir, name: str, custom_hooks=(), resume_from=None) -> Runner:
    """4 visits of 2 iterations over nih.cls and jsrt.seg, validated after visits 2 and 4;
    Foundation X's teacher: EMA with m = 0.8 once per visit, consistency weight 0.5."""
    return Runner(
        model=model_cfg(),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=dict(type='MultiTaskDataset', pairs=pairs()),
            sampler=dict(type='MultiTaskSampler', batch_size=2, mode='cyclic', seed=0),
            batch_size=2, num_workers=0, collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='CyclicTrainLoop', max_visits=4, val_interval=4),
        val_dataloader=dict(
            dataset=dict(type='MultiTaskDataset', pairs=pairs(2)),
            sampler=dict(type='MultiTaskSampler', batch_size=2, mode='sequential'),
            batch_size=2, num_workers=0, collate_fn=dict(type='pseudo_collate')),
        val_cfg=dict(type='TeacherStudentValLoop'),
        val_evaluator=dict(type='MultiTaskMetric'),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
            paramwise_cfg=dict(custom_keys={'student.backbone': dict(lr_mult=0.1)})),
        custom_hooks=[dict(type='TeacherEMAHook', momentum=0.8, interval='visit'),
                      *custom_hooks],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4,
                            save_best=['student/score', 'teacher/score'], rule='greater'),
            logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='fxmm')


def test_tiny_real_run_updates_the_teacher_per_visit_and_saves_the_best_of_each(tmp_path):
    before = EMARecorder('HIGH')  # runs before TeacherEMAHook (NORMAL)
    after = EMARecorder('LOW')
    runner = make_runner(tmp_path / 'full', 'tsv_full', custom_hooks=[before, after])
    runner.train()
    model = runner.model
    assert runner.iter == 8
    # the EMA hook changed the teacher exactly at visit ends, by the formula
    updates = 0
    for b, a in zip(before.records, after.records):
        assert torch.equal(a['student'], b['student'])
        if b['last_of_visit']:
            updates += 1
            torch.testing.assert_close(a['teacher'], 0.8 * b['teacher'] + 0.2 * b['student'])
        else:
            assert torch.equal(a['teacher'], b['teacher']), b['iter']
    assert updates == 4
    assert not torch.equal(model.teacher.cls_head.heads['nih'].weight,
                           model.student.cls_head.heads['nih'].weight)
    assert model.progress == pytest.approx(7 / 8)
    # metrics of both copies, and the best checkpoint of each
    for side in ('student', 'teacher'):
        assert 0 <= runner.message_hub.get_info(f'best_score_{side}/score') <= 1
        assert glob.glob(osp.join(tmp_path, 'full', f'best_{side}_score_iter_*.pth')), side
    # checkpoints carry the teacher and the progress
    state = torch.load(osp.join(tmp_path, 'full', 'iter_8.pth'), map_location='cpu',
                       weights_only=False)['state_dict']
    assert torch.equal(state['teacher.cls_head.heads.nih.weight'],
                       model.teacher.cls_head.heads['nih'].weight)
    assert float(state['progress']) == pytest.approx(7 / 8)
    # the optimiser holds exactly the student
    # (optimizer.param_groups: the wrapper's own param_groups add mmengine's base-lr record)
    in_optim = {id(p) for g in runner.optim_wrapper.optimizer.param_groups for p in g['params']}
    assert in_optim == {id(p) for p in model.student.parameters()}
    assert model.predict_on == 'student'
    # a run resumed at iteration 4 keeps the saved teacher (no hard copy) and ends where
    # the uninterrupted run ended
    resumed = make_runner(tmp_path / 'resumed', 'tsv_resumed',
                          resume_from=osp.join(tmp_path, 'full', 'iter_4.pth'))
    resumed.train()
    final = resumed.model.state_dict()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(final[name], value, msg=name)
