"""Tests of TeacherStudent: a frozen teacher outside the optimiser, the consistency loss of
each task (zero for identical copies, non-zero otherwise), its weighting modes and schedule,
checkpoint loading and prediction routing."""
import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_state_dict

import fxmm.models.data_preprocessors.cxr_data_preprocessor  # noqa: F401  registers
import fxmm.models.detectors.shared_dino  # noqa: F401
import fxmm.models.foundation_x  # noqa: F401
import fxmm.models.heads.multi_cls_head  # noqa: F401
import fxmm.models.heads.multi_seg_head  # noqa: F401
import fxmm.models.necks.shared_upernet  # noqa: F401
from fxmm.models.teacher_student import TeacherStudent
from fxmm.registry import MODELS
from fxmm.testing._utils import demo_cxr_inputs, get_tiny_model_cfg
from fxmm.utils.schedules import build_schedule

NUM_CLASSES = dict(nih=dict(num_cls=3), jsrt=dict(num_seg=3), tbx=dict(num_det=2))
PAIRS = dict(cls='nih', seg='jsrt', loc='tbx')


@pytest.fixture(autouse=True)
def fxmm_default_scope():
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


def tiny_cfg(projector_dims=None, with_loc=True, siim_loc=False):
    """fxmm.testing's tiny FoundationX, with (``with_loc``) its SharedDINO for ``tbx`` (and,
    with ``siim_loc``, first for ``siim``: tbx becomes the second loc dataset); optional Ark
    projector."""
    cfg = get_tiny_model_cfg(with_loc=with_loc)
    cfg.cls_head.projector_dims = projector_dims
    if with_loc and not siim_loc:
        del cfg.datasets.siim.det_classes
    return cfg


def build(**kwargs) -> TeacherStudent:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(dict(type='TeacherStudent', model=tiny_cfg(**kwargs)))
        model.init_weights()
    return model


@pytest.fixture(scope='module')
def model_and_perturbed():
    """An initialised model (teacher == student) and a copy whose teacher is perturbed."""
    model = build()
    perturbed = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in perturbed.teacher.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    return model, perturbed


def batch(model, task: str, seed: int = 0) -> dict:
    dataset = PAIRS[task]
    data = demo_cxr_inputs(2, 64, task, dataset, seed=seed, **NUM_CLASSES[dataset])
    return model.data_preprocessor(data, training=True)


def run_loss(model, data):
    with torch.random.fork_rng():  # DINO's de-noising queries draw from the global RNG
        torch.manual_seed(0)
        return model(**copy.deepcopy(data), mode='loss')


def test_teacher_is_frozen_gets_no_grad_and_stays_out_of_the_optimiser(model_and_perturbed):
    model = copy.deepcopy(model_and_perturbed[0])
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert all(p.requires_grad for p in model.student.parameters())
    model.train()
    assert model.student.training and not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())
    for task in ('cls', 'seg', 'loc'):
        losses = run_loss(model, batch(model, task))
        sum(losses.values()).backward()
        assert all(p.grad is None for p in model.teacher.parameters()), task
        assert model.student.backbone.patch_embed.projection.weight.grad.abs().sum() > 0
    # mmengine's default constructor with a paramwise_cfg skips the frozen teacher
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
        paramwise_cfg=dict(custom_keys={'student.backbone': dict(lr_mult=0.1)})))
    in_optim = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    assert len(in_optim) == len(list(model.student.parameters()))
    assert {id(p) for p in in_optim} == {id(p) for p in model.student.parameters()}
    backbone = {id(p) for p in model.student.backbone.parameters()}
    assert all(g['lr'] == pytest.approx(1e-5 if id(g['params'][0]) in backbone else 1e-4)
               for g in wrapper.optimizer.param_groups)
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    wrapper.step()
    for name, value in model.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[name]), name


@pytest.mark.parametrize('task', ['cls', 'seg', 'loc'])
def test_consistency_is_zero_for_identical_copies_and_positive_otherwise(
        model_and_perturbed, task):
    model, perturbed = model_and_perturbed
    data = batch(model, task)
    key = f'{PAIRS[task]}.{task}.loss_consistency'
    # the seg neck has BatchNorm: only in eval mode do identical weights give identical
    # outputs (in training the student normalises with batch statistics)
    model.train(task != 'seg')
    same = run_loss(model, data)
    assert same[key].item() < 1e-10
    perturbed.train(task != 'seg')
    different = run_loss(perturbed, data)
    assert different[key].item() > 1e-5
    assert different[key].requires_grad  # it trains the student
    # the task losses are the student's: unchanged by the teacher
    for name, value in same.items():
        if name != key:
            torch.testing.assert_close(different[name], value)
    model.train(), perturbed.train()


def test_consistency_gradient_reaches_only_the_student_path_of_the_task(model_and_perturbed):
    _, perturbed = model_and_perturbed
    perturbed.zero_grad()
    losses = run_loss(perturbed, batch(perturbed, 'loc'))
    losses['tbx.loc.loss_consistency'].backward()
    student = perturbed.student
    assert student.loc_head.encoder.layers[0].ffn.layers[1].weight.grad.abs().sum() > 0
    assert student.loc_head.branches['tbx'].decoder.layers[1].ffn.layers[1].weight.grad \
        .abs().sum() > 0
    assert student.backbone.patch_embed.projection.weight.grad.abs().sum() > 0
    assert student.cls_head.heads['nih'].weight.grad is None
    perturbed.zero_grad()


def test_a_loc_step_on_the_second_loc_dataset_uses_only_its_branch():
    """tbx, the second of two loc datasets: its student branch alone gets gradients, and the
    teacher compares through its own tbx branch."""
    model = build(siim_loc=True).train()
    assert model.student.loc_head.dataset_names == ['siim', 'tbx']
    data = batch(model, 'loc')  # tbx
    losses = run_loss(model, data)
    assert all(k.startswith('tbx.loc.') for k in losses)
    assert losses['tbx.loc.loss_consistency'].item() < 1e-10  # teacher == student
    sum(losses.values()).backward()
    branches = model.student.loc_head.branches
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in branches['tbx'].parameters())
    assert all(p.grad is None for p in branches['siim'].parameters())
    assert all(p.grad is None for p in model.teacher.parameters())
    teacher_branches = model.teacher.loc_head.branches
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in teacher_branches['siim'].parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    assert run_loss(model, data)['tbx.loc.loss_consistency'].item() < 1e-10
    with torch.no_grad():
        for p in teacher_branches['tbx'].parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=generator))
    assert run_loss(model, data)['tbx.loc.loss_consistency'].item() > 1e-5


def test_loc_consistency_compares_the_same_anchors(model_and_perturbed):
    """The teacher's decoder runs on the student's anchors: with an identical decoder but a
    different encoder, the states still differ only through the memory, and equal states
    come out when the teacher is the student."""
    model, _ = model_and_perturbed
    data = batch(model, 'loc')
    feats = model.student.extract_feat(data['inputs'])
    with torch.random.fork_rng():
        torch.manual_seed(0)
        _, states, anchors = model._student_pass(data['inputs'], data['data_samples'], 'tbx',
                                                 'loc')
    assert states.shape == (2, 2, 30, 256) and anchors.shape == (2, 30, 4)  # 30 queries
    assert not anchors.requires_grad and 0 <= anchors.min() and anchors.max() <= 1
    with torch.no_grad():
        head = model.teacher.loc_head
        teacher_states = head.query_states(feats, data['data_samples'], 'tbx', anchors)
        shuffled = head.query_states(feats, data['data_samples'], 'tbx', anchors.flip(1))
    torch.testing.assert_close(teacher_states, states.detach(), rtol=1e-4, atol=1e-5)
    # other anchors give other states: the anchors are really used
    assert (shuffled - teacher_states).abs().max() > 1e-3


def test_ark_projector_is_what_cls_consistency_compares():
    model = build(projector_dims=24, with_loc=False)
    data = batch(model, 'cls')
    _, feat, _ = model._student_pass(data['inputs'], data['data_samples'], 'nih', 'cls')
    assert feat.shape == (2, 24)  # the projector output, not the 256-d pooled feature
    with torch.no_grad():
        model.teacher.cls_head.projector.weight.mul_(1.1)
    assert run_loss(model, data)['nih.cls.loss_consistency'] > 1e-5


def test_weighting_modes_and_schedule(model_and_perturbed):
    _, perturbed = model_and_perturbed
    data = batch(perturbed, 'cls')
    base = run_loss(perturbed, data)  # add mode, w = 0.5
    mse = base['nih.cls.loss_consistency'] / 0.5
    ark = copy.deepcopy(perturbed)
    ark.consistency_mode = 'ark'
    ark.consistency_schedule = build_schedule(dict(type='cosine', start=0., end=0.5), 'c')
    for progress, c in [(0., 0.), (0.5, 0.25), (1., 0.5)]:
        ark.set_progress(progress)
        assert ark.consistency_weight == pytest.approx(c)
        losses = run_loss(ark, data)
        torch.testing.assert_close(losses['nih.cls.loss_cls'], (1 - c) * base['nih.cls.loss_cls'])
        torch.testing.assert_close(losses['nih.cls.loss_consistency'], c * mse)
    assert 'progress' in ark.state_dict() and ark.state_dict()['progress'] == 1.
    with pytest.raises(ValueError, match='progress must lie in'):
        ark.set_progress(1.5)


@pytest.mark.parametrize('kwargs, error', [
    (dict(consistency_mode='mean'), "consistency_mode must be one of"),
    (dict(predict_on='ema'), "predict_on must be one of"),
    (dict(consistency_weight=1.5, consistency_mode='ark'), r'must lie in \[0.0, 1.0\]'),
    (dict(consistency_weight=dict(type='cosine', start=0.)), "takes exactly"),
    (dict(consistency_weight=dict(type='linear', start=0., end=1.)), "schedule type"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error):
    with pytest.raises(ValueError, match=error):
        TeacherStudent(model=get_tiny_model_cfg(), **kwargs)


def test_plain_foundation_x_checkpoint_loads_into_both_copies(model_and_perturbed):
    perturbed = model_and_perturbed[1]
    plain = {k: v + 1 for k, v in perturbed.student.state_dict().items()
             if v.is_floating_point()}
    plain.update({k: v for k, v in perturbed.student.state_dict().items()
                  if not v.is_floating_point()})
    model = copy.deepcopy(perturbed)
    model.set_progress(0.3)
    # the runner's load_from path (mmengine's own recursive loader), strict
    load_state_dict(model, copy.deepcopy(plain), strict=True)
    student, teacher = model.student.state_dict(), model.teacher.state_dict()
    for name, value in plain.items():
        assert torch.equal(student[name], value) and torch.equal(teacher[name], value), name
    assert model.progress == pytest.approx(0.3)
    # a TeacherStudent state dict keeps its two different copies
    fresh = copy.deepcopy(model_and_perturbed[0])
    result = fresh.load_state_dict(perturbed.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    loaded = fresh.state_dict()
    for name, value in perturbed.state_dict().items():
        assert torch.equal(loaded[name], value), name


def test_predict_routes_to_the_chosen_copy(model_and_perturbed):
    _, perturbed = model_and_perturbed
    perturbed.eval()
    data = batch(perturbed, 'seg')
    with torch.no_grad():
        scores = {}
        for side in ('student', 'teacher'):
            perturbed.predict_on = side
            out = perturbed(**copy.deepcopy(data), mode='predict')
            scores[side] = torch.stack([s.pred_seg_masks.score for s in out])
            direct = getattr(perturbed, side).predict(**copy.deepcopy(data))
            torch.testing.assert_close(
                scores[side], torch.stack([s.pred_seg_masks.score for s in direct]))
            logits = perturbed(data['inputs'], mode='tensor')
            assert set(logits) == {'nih.cls', 'siim.cls', 'siim.seg', 'jsrt.seg'}
    assert (scores['student'] - scores['teacher']).abs().max() > 1e-4
    perturbed.predict_on = 'student'
    perturbed.train()


def test_predicting_on_switches_the_copy_for_the_block_and_restores_it(model_and_perturbed):
    model, _ = model_and_perturbed
    assert model.predict_on == 'student'
    with model.predicting_on('teacher'):
        assert model.predict_on == 'teacher'
    assert model.predict_on == 'student'
    with pytest.raises(RuntimeError, match='inside'):
        with model.predicting_on('teacher'):
            raise RuntimeError('inside')
    assert model.predict_on == 'student'
    with pytest.raises(ValueError, match='predict_on must be one of'):
        with model.predicting_on('ema'):
            pass
    assert model.predict_on == 'student'
