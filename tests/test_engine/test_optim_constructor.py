"""The optimiser of a TeacherStudent model holds exactly the student's parameters, in one
param group per distinct setting."""

import torch
from mmengine.optim import build_optim_wrapper

from fxmm.registry import MODELS
from fxmm.testing import get_tiny_model_cfg


def test_student_only_with_custom_keys():
    model = MODELS.build(dict(type='TeacherStudent', model=get_tiny_model_cfg()))
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', constructor='StudentOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-4),
        paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)})))
    in_optimizer = {id(p): g['lr'] for g in wrapper.optimizer.param_groups for p in g['params']}
    assert set(in_optimizer) == {id(p) for p in model.student.parameters()}
    assert in_optimizer[id(next(model.student.backbone.parameters()))] == 1e-5
    assert in_optimizer[id(next(model.student.cls_head.parameters()))] == 1e-4


def test_plain_model_unchanged():
    model = MODELS.build(get_tiny_model_cfg())
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', constructor='StudentOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.1)))
    params = [p for g in wrapper.optimizer.param_groups for p in g['params']]
    assert len(params) == len(list(model.parameters()))
    assert all(isinstance(p, torch.nn.Parameter) for p in params)


def _wrappers(constructor):
    """The same TeacherStudent twice (equal weights) and an AdamW wrapper on each, built by
    mmengine's default constructor (one group per parameter) and by ``constructor``."""
    torch.manual_seed(0)
    models = [MODELS.build(dict(type='TeacherStudent', model=get_tiny_model_cfg()))
              for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
               paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
    per_param = build_optim_wrapper(models[0].student, cfg)
    merged = build_optim_wrapper(models[1], dict(cfg, constructor=constructor))
    return models, per_param, merged


def _step(model, wrapper, weight):
    """One AdamW step of a loss that reaches the backbone and one of the cls heads only."""
    student = model.student
    loss = sum((p * weight).pow(2).sum() for p in student.backbone.parameters())
    loss = loss + sum(p.pow(2).sum() for p in student.cls_head.parameters())
    wrapper.update_params(loss)


def _params(model):
    return [p.detach().clone() for p in model.student.parameters()]


def test_equal_groups_merged_same_updates():
    models, per_param, merged = _wrappers('StudentOptimWrapperConstructor')
    groups = merged.optimizer.param_groups
    assert len(per_param.optimizer.param_groups) == len(list(models[0].student.parameters()))
    assert [g['lr'] for g in groups] == [1e-4, 1e-3]  # backbone, then everything else
    assert [len(g['params']) for g in groups] == [
        len(list(models[1].student.backbone.parameters())),
        len(list(models[1].student.parameters())) - len(
            list(models[1].student.backbone.parameters()))]
    before = _params(models[1])
    for weight in (1., 2., 0.5):
        _step(models[0], per_param, weight)
        _step(models[1], merged, weight)
    after = _params(models[1])
    for a, b in zip(_params(models[0]), after):
        assert torch.equal(a, b)
    moved = [not torch.equal(a, b) for a, b in zip(before, after)]
    # the backbone and the cls heads moved; the seg parts had no gradient and stayed
    assert moved[0] and any(moved) and not all(moved)
