"""Optimiser wrappers for long runs: skip a step whose loss is NaN/inf, and AMP on CPU too.

- :class:`SafeOptimWrapper` / :class:`SafeAmpOptimWrapper`: an iteration whose loss is not
  finite is skipped (no backward, no optimiser step) with a warning giving the iteration and
  every loss term, and so is the step of a finite loss with a NaN/inf gradient; the run
  stops after ``max_nonfinite`` such iterations in a row.
- :class:`AnyDeviceAmpOptimWrapper`: mmengine's ``AmpOptimWrapper`` refuses to start without
  an accelerator; this one falls back to bfloat16 autocast on CPU (no loss scaling needed).

``tools/train.py --amp`` swaps a wrapper for its AMP variant with :data:`AMP_VARIANTS`.
"""
import logging
from contextlib import contextmanager
from typing import Dict, Optional, Union

import torch
from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                             is_npu_available)
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import nn

from fxmm.registry import OPTIM_WRAPPERS

# optim_wrapper.type -> the type `tools/train.py --amp` switches it to
AMP_VARIANTS = {
    'OptimWrapper': 'AnyDeviceAmpOptimWrapper',
    'SafeOptimWrapper': 'SafeAmpOptimWrapper',
}


def _mean_value(value) -> Optional[float]:
    """A loss term as ``parse_losses`` reduces it (mean, summed over a list); None if it is
    not a tensor (or a list of them)."""
    if isinstance(value, torch.Tensor):
        return value.detach().float().mean().item()
    if isinstance(value, (list, tuple)) and value and \
            all(isinstance(v, torch.Tensor) for v in value):
        return sum(v.detach().float().mean().item() for v in value)
    return None


def _at_iter() -> str:
    """``' at iter N'`` (1-based) for a warning, from the message hub; empty outside a run."""
    iteration = MessageHub.get_current_instance().get_info('iter')
    return f' at iter {iteration + 1}' if iteration is not None else ''


class NonFiniteLossGuard:
    """Mixin for an mmengine ``OptimWrapper``: skip iterations whose loss is NaN or inf.

    In :meth:`update_params`, a loss that is not finite on *any* rank (the check is
    all-reduced, so every rank skips together and DDP stays in step) makes the iteration a
    no-op for the optimiser: no backward, no ``optimizer.step``, the parameters and the
    optimiser state (Adam moments, loss scale) are unchanged. With gradient accumulation,
    a skipped iteration adds nothing and, when it ends an accumulation window, the window's
    gradients are dropped (zeroed) instead of stepped. The learning-rate schedule keeps
    following the iteration count (``ParamSchedulerHook`` still steps), as it does for the
    steps ``GradScaler`` skips, so the run ends at its planned schedule. A finite loss whose
    gradients are not finite skips its optimiser step too (:meth:`step`).

    Each skip logs a warning with the iteration and the value of every loss term (read from
    the model's output by a forward hook set in :meth:`optim_context`). After
    ``max_nonfinite`` *consecutive* skipped iterations a :class:`RuntimeError` stops the run:
    isolated bad batches are survived, while a model whose weights or inputs keep giving
    NaN is not trained on for days. The counters are not saved in checkpoints.

    Args:
        max_nonfinite (int): consecutive non-finite iterations allowed; the next one raises.
            Defaults to 10.
        *args, **kwargs: passed to the wrapped ``OptimWrapper`` class.
    """

    def __init__(self, *args, max_nonfinite: int = 10, **kwargs) -> None:
        if isinstance(max_nonfinite, bool) or not isinstance(max_nonfinite, int) or \
                max_nonfinite < 0:
            raise ValueError(f'max_nonfinite must be an int >= 0, got {max_nonfinite!r}')
        super().__init__(*args, **kwargs)
        self.max_nonfinite = max_nonfinite
        self.consecutive_nonfinite = 0
        self.total_nonfinite = 0
        self._loss_terms: Optional[dict] = None

    @contextmanager
    def optim_context(self, model: nn.Module):
        """The wrapped class's context, plus a forward hook that keeps the model's output
        (the dict of loss terms) for the warning of a skipped iteration."""
        handle = model.register_forward_hook(self._keep_loss_terms)
        try:
            with super().optim_context(model):
                yield
        finally:
            handle.remove()

    def _keep_loss_terms(self, module: nn.Module, args, output) -> None:
        if isinstance(output, dict):
            self._loss_terms = output

    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """Backward and step as the wrapped class does, unless the loss is not finite.

        Args:
            loss (Tensor): the total loss, shape ().
            step_kwargs (dict, optional): passed to ``optimizer.step``.
            zero_kwargs (dict, optional): passed to ``optimizer.zero_grad``.

        Raises:
            RuntimeError: on the ``max_nonfinite + 1``-th consecutive non-finite loss.
        """
        terms, self._loss_terms = self._loss_terms, None
        local_finite = bool(torch.isfinite(loss.detach()).all())
        flag = torch.tensor([float(local_finite)], device=loss.device)
        all_reduce(flag, op='min')  # no-op without torch.distributed
        if flag.item() > 0:
            super().update_params(loss, step_kwargs=step_kwargs, zero_kwargs=zero_kwargs)
            return
        self._inner_count += 1  # the iteration counts for gradient accumulation windows
        if self.should_update():
            self.zero_grad(**(zero_kwargs or {}))
        self._skipped(self._describe(loss, terms, local_finite))

    def step(self, **kwargs) -> None:
        """The wrapped class's step, skipped when a gradient is NaN/inf although the loss
        was finite (e.g. a sqrt at 0): clipping would spread the NaN into every gradient and
        the step into every weight. The gradients are then zeroed and the iteration counts
        as a non-finite one. DDP has already averaged the gradients, so every rank decides
        alike. With an enabled loss scaler (AMP on a GPU) ``GradScaler`` skips such steps
        itself."""
        scaler = getattr(self, 'loss_scaler', None)
        if scaler is None or not scaler.is_enabled():
            grads = [p.grad for group in self.optimizer.param_groups for p in group['params']
                     if p.grad is not None]
            if grads and not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
                self.optimizer.zero_grad()
                self._skipped(f'non-finite gradient{_at_iter()} (finite loss)')
                return
        super().step(**kwargs)
        self.consecutive_nonfinite = 0

    def _skipped(self, report: str) -> None:
        """Count a skipped iteration; warn, or stop after ``max_nonfinite`` in a row."""
        self.consecutive_nonfinite += 1
        self.total_nonfinite += 1
        if self.consecutive_nonfinite > self.max_nonfinite:
            raise RuntimeError(
                f'{report}; {self.consecutive_nonfinite} iterations in a row had a '
                f'non-finite loss or gradient (max_nonfinite={self.max_nonfinite}), so '
                'training stops. The weights or the data diverged: lower the learning rate or '
                'check the data of the pair named above, then resume from an earlier '
                'checkpoint.')
        print_log(f'{report}; optimiser step skipped, parameters unchanged '
                  f'({self.consecutive_nonfinite} in a row, {self.total_nonfinite} in total, '
                  f'stops after {self.max_nonfinite} in a row)',
                  logger='current', level=logging.WARNING)

    @staticmethod
    def _describe(loss: torch.Tensor, terms: Optional[dict], local_finite: bool) -> str:
        """``non-finite loss at iter 12: loss=nan (a.cls.loss_cls=nan, ...)``."""
        values = {k: _mean_value(v) for k, v in (terms or {}).items()}
        detail = ', '.join(f'{k}={v:.4g}' for k, v in values.items() if v is not None)
        text = f'non-finite loss{_at_iter()}: loss={loss.detach().float().sum().item():.4g}'
        if detail:
            text += f' ({detail})'
        if local_finite:
            text += ' - finite on this rank, not finite on another rank'
        return text


@OPTIM_WRAPPERS.register_module()
class SafeOptimWrapper(NonFiniteLossGuard, OptimWrapper):
    """mmengine's ``OptimWrapper`` that skips iterations with a NaN/inf loss and stops after
    ``max_nonfinite`` in a row (see :class:`NonFiniteLossGuard`).

    Example:
        >>> optim_wrapper = dict(type='SafeOptimWrapper', max_nonfinite=10,
        ...                      optimizer=dict(type='AdamW', lr=1e-4))
    """


@OPTIM_WRAPPERS.register_module()
class AnyDeviceAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` that also runs without an accelerator.

    On CUDA/NPU/MLU/MUSA it is ``AmpOptimWrapper`` unchanged: fp16 autocast with dynamic loss
    scaling by default, or ``dtype='bfloat16'``. On CPU, where mmengine's wrapper refuses to
    start and torch autocast supports bfloat16 only, it autocasts to bfloat16 and does not
    scale the loss (bfloat16 has float32's exponent range, so gradients do not underflow);
    another ``dtype`` is replaced by bfloat16 with a warning, and ``loss_scale`` is unused.

    Args:
        loss_scale (float | str | dict): as in ``AmpOptimWrapper``. Defaults to 'dynamic'.
        dtype (str | torch.dtype, optional): autocast dtype, as in ``AmpOptimWrapper``.
        use_fsdp (bool): as in ``AmpOptimWrapper``. Defaults to False.
        **kwargs: passed to ``OptimWrapper``.
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None,
                 use_fsdp: bool = False,
                 **kwargs) -> None:
        if (is_cuda_available() or is_npu_available() or is_mlu_available()
                or is_musa_available()):
            super().__init__(loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
            return
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            print_log(f'AMP on CPU autocasts to bfloat16 (the only dtype of CPU autocast in '
                      f'mmengine); dtype={dtype!r} is replaced', logger='current',
                      level=logging.WARNING)
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        # a disabled scaler: scale() returns the loss, step() is optimizer.step()
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16
        print_log('AMP on CPU: bfloat16 autocast, no loss scaling', logger='current')

    def load_state_dict(self, state_dict: dict) -> None:
        """As ``AmpOptimWrapper``, except that the empty loss-scaler state a CPU (bf16) run
        saves is skipped: such a checkpoint resumes on a GPU with a fresh loss scale instead
        of torch's "source state dict is empty" error."""
        if state_dict.get('loss_scaler') == {}:
            state_dict = {k: v for k, v in state_dict.items() if k != 'loss_scaler'}
        super().load_state_dict(state_dict)


@OPTIM_WRAPPERS.register_module()
class SafeAmpOptimWrapper(NonFiniteLossGuard, AnyDeviceAmpOptimWrapper):
    """:class:`AnyDeviceAmpOptimWrapper` that skips iterations with a NaN/inf loss (see
    :class:`NonFiniteLossGuard`). The check is on the loss itself: steps that the fp16 loss
    scaler skips because of inf *gradients* are the scaler's normal work and not counted.
    """
