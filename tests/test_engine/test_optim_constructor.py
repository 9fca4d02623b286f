"""The optimiser of a TeacherStudent model holds exactly the student's parameters."""
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
