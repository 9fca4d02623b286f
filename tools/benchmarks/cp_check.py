"""Gradient checkpointing with the loc pairs: are the losses of a few loc steps finite?

One H100 run (docs/reliability.md) saw the first loc step with ``with_cp`` fail in the
Hungarian matcher on NaN box costs. This check trains the config's model (its teacher
included when it has one) for a few loc steps on the first loc dataset, from the same
initial weights and the same random batches, in variants: fp32 without checkpointing (the
control), fp32 with it and bf16 (the AMP optim wrapper) with it. A step that raises (the
matcher's ``matrix contains invalid numeric entries``) is recorded and ends that variant.
Checkpointing only recomputes activations (stochastic depth's draws are replayed), so in
fp32 its first step's loss equals the control's up to float rounding.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from . import models
from .step import foundation_size

#: name -> (bf16, with_cp); the first is the control the others are compared with
CP_VARIANTS = (('fp32', False, False), ('fp32_cp', False, True), ('bf16_cp', True, True))


def _floats(log_vars: dict) -> dict:
    return {k: float(v) for k, v in log_vars.items()}


def cp_check(cfg: Config,
             device: str = 'cpu',
             size: Optional[int] = None,
             batch_size: Optional[int] = None,
             steps: int = 3,
             variants: Sequence[Tuple[str, bool, bool]] = CP_VARIANTS,
             seed: int = 0) -> dict:
    """Train ``steps`` loc steps per variant; see the module docstring.

    Returns:
        dict: ``settings`` (with the ``dataset``) and, per variant, ``amp``, ``with_cp``,
        ``losses`` (one dict of the logged losses per step taken), ``error`` (the exception
        of the step that raised, else None), ``params_finite`` (every weight finite after
        the steps), ``finite`` (every step ran and every loss and weight is finite) and,
        beside the control, ``first_loss_diff`` (|first step's total loss - the control's|).
        ``all_finite``: every variant finite.
    """
    size = size or foundation_size(cfg)
    batch_size = batch_size or cfg.train_dataloader.batch_size
    teacher = cfg.model.get('type') == 'TeacherStudent'
    out = dict(settings=dict(device=device, size=size, batch_size=batch_size, steps=steps,
                             teacher=teacher, seed=seed), variants={})
    batches = None
    for name, amp, with_cp in variants:
        torch.manual_seed(seed)  # the same initial weights in every variant
        model = models.build_fx(models.student_config(cfg, size, with_cp), device, teacher,
                                models.consistency_weight_of(cfg))
        optim_wrapper = models.build_optimizer(model, cfg, amp)
        student = getattr(model, 'student', model)
        dataset = models.task_dataset(student, 'loc')
        if dataset is None:
            raise ValueError('cp check: the config has no loc dataset')
        if batches is None:
            batches = [models.fx_batch(student, 'loc', dataset, size, batch_size, seed=seed + i)
                       for i in range(steps)]
            out['settings']['dataset'] = dataset
        torch.manual_seed(seed + 1)  # the same drop-path and de-noising draws
        result = dict(amp=amp, with_cp=with_cp, losses=[], error=None)
        for batch in batches:
            try:
                result['losses'].append(_floats(model.train_step(batch, optim_wrapper)))
            except (RuntimeError, ValueError) as err:
                result['error'] = f'{type(err).__name__}: {err}'[:300]
                break
        result['params_finite'] = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        result['finite'] = (result['error'] is None and result['params_finite'] and all(
            math.isfinite(v) for losses in result['losses'] for v in losses.values()))
        out['variants'][name] = result
        del model, optim_wrapper
    control = out['variants'][variants[0][0]]
    for name, result in out['variants'].items():
        if name != variants[0][0] and result['losses'] and control['losses']:
            result['first_loss_diff'] = abs(result['losses'][0]['loss'] -
                                            control['losses'][0]['loss'])
    out['all_finite'] = all(r['finite'] for r in out['variants'].values())
    return out
