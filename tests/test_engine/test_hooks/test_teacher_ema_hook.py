"""Tests of TeacherEMAHook on a tiny TeacherStudent with a Mock runner: the EMA formula
(parameters and buffers, checked number by number), the hard copy at iteration 0 only, the
update intervals, Ark's cosine momentum and the checks before training."""
import copy
import math
from unittest.mock import Mock

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import fxmm.models.data_preprocessors.cxr_data_preprocessor  # noqa: F401  registers
import fxmm.models.foundation_x  # noqa: F401
import fxmm.models.heads.multi_cls_head  # noqa: F401
import fxmm.models.heads.multi_seg_head  # noqa: F401
import fxmm.models.necks.shared_upernet  # noqa: F401
from fxmm.datasets.samplers.multi_task_sampler import VisitInfo
from fxmm.engine.hooks.teacher_ema_hook import TeacherEMAHook
from fxmm.models.teacher_student import TeacherStudent
from fxmm.testing._utils import get_tiny_model_cfg
from fxmm.utils.schedules import ProgressSchedule, build_schedule


@pytest.fixture(scope='module')
def base_model() -> TeacherStudent:
    with DefaultScope.overwrite_default_scope('fxmm'), torch.random.fork_rng():
        torch.manual_seed(0)
        model = TeacherStudent(model=get_tiny_model_cfg(),
                               consistency_weight=dict(type='cosine', start=0., end=0.5),
                               consistency_mode='ark')
        model.init_weights()
    return model


@pytest.fixture
def model(base_model) -> TeacherStudent:
    """A copy whose student differs from the teacher in every parameter and BN statistic."""
    model = copy.deepcopy(base_model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for tensor in list(model.student.parameters()) + list(model.student.buffers()):
            if tensor.is_floating_point():
                tensor.add_(0.1 + torch.rand(tensor.shape, generator=generator))
        for name, buf in model.student.named_buffers():
            if name.endswith('num_batches_tracked'):
                buf.fill_(7)
    return model


def make_runner(model, iter=0, max_iters=100, visit=None, optim_wrapper=None):
    runner = Mock()
    runner.model = model
    runner.iter = iter
    runner.max_iters = max_iters
    runner.train_loop.current_visit = visit
    runner.optim_wrapper = optim_wrapper or build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.1), paramwise_cfg=dict(custom_keys={})))
    runner.message_hub = MessageHub.get_instance('test_teacher_ema_hook')
    return runner


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def float_buffers(module):
    return [n for n, b in module.named_buffers() if b.is_floating_point()]


@pytest.mark.parametrize('update_buffers', [True, False])
def test_ema_formula_is_exact_for_every_parameter_and_buffer(model, update_buffers):
    assert float_buffers(model.student)  # BN running stats of the UperNet
    t0, s = snapshot(model.teacher), snapshot(model.student)
    m = 0.8
    TeacherEMAHook(momentum=m, update_buffers=update_buffers).ema_update(model, m)
    teacher = model.teacher.state_dict()
    params = dict(model.teacher.named_parameters())
    buffers = dict(model.teacher.named_buffers())
    for name, value in teacher.items():
        if name in params or (update_buffers and value.is_floating_point()):
            # teacher = m * teacher + (1 - m) * student, computed in float64
            expected = (m * t0[name].double() + (1 - m) * s[name].double()).float()
            torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6, msg=name)
            assert not torch.equal(value, t0[name]) and not torch.equal(value, s[name]), name
        else:  # integer buffers always, float buffers when not averaged: the student's
            assert name in buffers
            assert torch.equal(value, s[name]), name
    assert torch.equal(teacher['seg_neck.uper.bottleneck.bn.num_batches_tracked'],
                       torch.tensor(7))
    # the student is untouched
    for name, value in model.student.state_dict().items():
        assert torch.equal(value, s[name]), name


def test_hard_copy_at_iteration_0_only(model):
    t0 = snapshot(model.teacher)
    hook = TeacherEMAHook(momentum=0.8, interval='iter')
    hook.before_train(make_runner(model, iter=5))  # a resumed run keeps its teacher
    for name, value in model.teacher.state_dict().items():
        assert torch.equal(value, t0[name]), name
    hook.before_train(make_runner(model, iter=0))
    student = model.student.state_dict()
    for name, value in model.teacher.state_dict().items():
        assert torch.equal(value, student[name]), name


@pytest.mark.parametrize('interval, updates', [
    ('iter', [True] * 7),
    (3, [False, False, True, False, False, True, False]),
    # two visits of 3 and 4 iterations: updated at the last iteration of each
    ('visit', [False, False, True, False, False, False, True]),
])
def test_update_interval(model, interval, updates):
    hook = TeacherEMAHook(momentum=0.5, interval=interval)
    visits = [VisitInfo(0, 0, 'nih.cls', 'cls', i, 3) for i in range(3)] + \
             [VisitInfo(1, 1, 'jsrt.seg', 'seg', i, 4) for i in range(4)]
    for it, (visit, updated) in enumerate(zip(visits, updates)):
        runner = make_runner(model, iter=it, max_iters=7, visit=visit)
        before = model.teacher.backbone.patch_embed.projection.weight.clone()
        hook.before_train_iter(runner, it)
        hook.after_train_iter(runner, it)
        after = model.teacher.backbone.patch_embed.projection.weight
        assert (not torch.equal(before, after)) == updated, it


def test_ark_schedules_follow_their_closed_forms(model):
    hook = TeacherEMAHook(momentum=dict(type='cosine', start=0.9, end=1.0))
    runner = make_runner(model, max_iters=200)
    for it, progress, momentum, weight in [(0, 0., 0.9, 0.), (100, 0.5, 0.95, 0.25),
                                           (50, 0.25, None, None), (199, 199 / 200, None, None)]:
        runner.iter = it
        hook.before_train_iter(runner, it)
        assert float(model.progress) == pytest.approx(progress)
        cosine = (1 + math.cos(math.pi * progress)) / 2
        # momentum: end + (start - end) * (1 + cos(pi p)) / 2; the same for the weight
        assert hook.current_momentum(model) == pytest.approx(1.0 + (0.9 - 1.0) * cosine)
        assert model.consistency_weight == pytest.approx(0.5 + (0. - 0.5) * cosine)
        if momentum is not None:
            assert hook.current_momentum(model) == pytest.approx(momentum)
            assert model.consistency_weight == pytest.approx(weight)
        hub = runner.message_hub
        assert hub.get_scalar('train/teacher_momentum').current() == pytest.approx(
            hook.current_momentum(model))
        assert hub.get_scalar('train/consistency_weight').current() == pytest.approx(
            model.consistency_weight)
    schedule = ProgressSchedule('cosine', start=0.9, end=1.0)
    assert schedule(1.0) == 1.0 and schedule(0.0) == pytest.approx(0.9)
    assert build_schedule(0.8, 'm')(0.3) == 0.8
    # the update at the end of the last visit uses m(p) of its iteration
    t0, s = snapshot(model.teacher), snapshot(model.student)
    runner.train_loop.current_visit = VisitInfo(9, 1, 'jsrt.seg', 'seg', 19, 20)
    hook.after_train_iter(runner, 199)
    m = 1.0 + (0.9 - 1.0) * (1 + math.cos(math.pi * 199 / 200)) / 2
    name = 'cls_head.heads.nih.weight'
    torch.testing.assert_close(model.teacher.state_dict()[name],
                               (m * t0[name].double() + (1 - m) * s[name].double()).float())


def test_before_train_rejects_what_it_cannot_work_with(model):
    with pytest.raises(TypeError, match=r"no \['student', 'teacher', 'set_progress'\]"):
        TeacherEMAHook().before_train(make_runner(model.student))
    runner = make_runner(model)
    del runner.train_loop.current_visit
    with pytest.raises(TypeError, match='reports the visit'):
        TeacherEMAHook(interval='visit').before_train(runner)
    TeacherEMAHook(interval=2).before_train(runner)  # fine without visits
    # without a paramwise_cfg mmengine puts model.parameters() - the teacher too - in the
    # optimiser
    leaky = build_optim_wrapper(model, dict(optimizer=dict(type='SGD', lr=0.1)))
    with pytest.raises(ValueError, match='teacher parameters .* are in the optimiser'):
        TeacherEMAHook(interval='iter').before_train(make_runner(model, optim_wrapper=leaky))


@pytest.mark.parametrize('kwargs, error', [
    (dict(momentum=1.5), r'momentum must lie in \[0.0, 1.0\]'),
    (dict(momentum=dict(type='cosine', start=0.9, end=1.1)), r'must lie in'),
    (dict(momentum='0.8'), 'must be a number or a schedule dict'),
    (dict(interval='epoch'), 'interval must be one of'),
    (dict(interval=0), 'interval must be one of'),
])
def test_bad_arguments_raise_clear_errors(kwargs, error):
    with pytest.raises((ValueError, TypeError), match=error):
        TeacherEMAHook(**kwargs)


def test_ema_of_identical_copies_is_exactly_stable(base_model):
    """Constant buffers and equal weights do not drift by rounding over many updates."""
    model = copy.deepcopy(base_model)
    hook = TeacherEMAHook(momentum=0.8)
    for _ in range(50):
        hook.ema_update(model, 0.8)
    student = model.student.state_dict()
    for name, value in model.teacher.state_dict().items():
        assert torch.equal(value, student[name]), name
