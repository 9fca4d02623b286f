"""Update the teacher of a :class:`~fxmm.models.TeacherStudent` by EMA of the student."""
from typing import Iterator, Optional, Tuple, Union

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from torch import Tensor, nn

from fxmm.models.teacher_student import COPIES
from fxmm.registry import HOOKS
from fxmm.utils.schedules import build_schedule

INTERVALS = ('visit', 'iter')


@HOOKS.register_module()
class TeacherEMAHook(Hook):
    """The teacher as an exponential moving average of the student::

        teacher = m * teacher + (1 - m) * student

    for every parameter (and, with ``update_buffers``, every floating-point buffer).
    ``m`` is the *teacher's* weight: Foundation X uses ``m = 0.8`` once per visit, Ark a
    cosine from 0.9 to 1.0 after every dataset pass (a visit). Beware: mmdet's
    ``MeanTeacherHook(momentum=...)`` is the *student's* weight, ``1 - m`` here.

    - ``before_train``: checks the model (``student``, ``teacher``, ``set_progress``, as
      :class:`~fxmm.models.TeacherStudent` has) and that no teacher parameter is in the
      optimiser, then, only when ``runner.iter == 0``, hard-copies the student into the
      teacher - a resumed run keeps its teacher. mmengine's
      ``DefaultOptimWrapperConstructor`` skips the teacher's frozen parameters only when
      ``optim_wrapper`` has a ``paramwise_cfg`` (any, e.g.
      ``dict(custom_keys={'student.backbone': dict(lr_mult=0.1)})`` or
      ``dict(custom_keys={})``); without one it hands ``model.parameters()`` over whole and
      this hook raises.
    - ``before_train_iter``: sets the model's training progress ``p = iter / max_iters``
      (it drives the consistency-weight schedule) and logs ``train/teacher_momentum`` and
      ``train/consistency_weight``.
    - ``after_train_iter`` (after the optimiser step, before ``CheckpointHook`` saves):
      the EMA update with ``m = momentum(p)``, at the end of every visit
      (``interval='visit'``: ``current_visit.iter_in_visit == visit_len - 1``, which needs
      :class:`~fxmm.engine.runner.CyclicTrainLoop`), every iteration (``'iter'``) or every
      ``n`` iterations (an int).

    DDP wrappers are unwrapped; every rank holds the same student, so the teachers stay equal.

    Example:
        >>> custom_hooks = [dict(type='TeacherEMAHook', momentum=0.8)]  # Foundation X
        >>> custom_hooks = [dict(type='TeacherEMAHook',  # Ark
        ...                      momentum=dict(type='cosine', start=0.9, end=1.0))]

    Args:
        momentum (float | dict): ``m``, the teacher's weight, in [0, 1]; a number or a
            :class:`~fxmm.utils.schedules.ProgressSchedule` config over the training
            progress. Defaults to 0.8.
        interval (str | int): ``'visit'``, ``'iter'`` or a number of iterations. Defaults
            to ``'visit'``.
        update_buffers (bool): average floating-point buffers too (other buffers are
            copied); if False, all buffers are copied from the student. Defaults to True.
    """

    def __init__(self,
                 momentum: Union[float, dict] = 0.8,
                 interval: Union[str, int] = 'visit',
                 update_buffers: bool = True) -> None:
        self.momentum = build_schedule(momentum, 'TeacherEMAHook momentum', high=1.)
        if not (interval in INTERVALS or (isinstance(interval, int)
                                          and not isinstance(interval, bool) and interval > 0)):
            raise ValueError(f'TeacherEMAHook: interval must be one of {INTERVALS} or a '
                             f'positive int, got {interval!r}')
        self.interval = interval
        self.update_buffers = update_buffers

    @staticmethod
    def _model(runner) -> nn.Module:
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        """Check the model, loop and optimiser; hard-copy the student into the teacher at
        iteration 0."""
        model = self._model(runner)
        missing = [name for name in (*COPIES, 'set_progress')
                   if not hasattr(model, name)]
        if missing:
            raise TypeError(f'TeacherEMAHook needs a student-teacher model (TeacherStudent), '
                            f'but {type(model).__name__} has no {missing}')
        if self.interval == 'visit' and not hasattr(runner.train_loop, 'current_visit'):
            raise TypeError("TeacherEMAHook(interval='visit') needs a train loop that "
                            "reports the visit (train_cfg=dict(type='CyclicTrainLoop', ...)), "
                            f'got {type(runner.train_loop).__name__}; or use '
                            "interval='iter' or an int")
        self._check_optimizer(runner.optim_wrapper, model)
        if runner.iter == 0:
            self.ema_update(model, momentum=0.)
            print_log('TeacherEMAHook: teacher initialised as a copy of the student',
                      logger='current')

    @staticmethod
    def _check_optimizer(optim_wrapper, model: nn.Module) -> None:
        """ValueError if a teacher parameter is in an optimiser of ``optim_wrapper``."""
        wrappers = (optim_wrapper.values() if isinstance(optim_wrapper, OptimWrapperDict)
                    else [optim_wrapper])
        in_optim = {id(p) for wrapper in wrappers
                    for group in wrapper.optimizer.param_groups for p in group['params']}
        leaked = [name for name, p in model.teacher.named_parameters() if id(p) in in_optim]
        if leaked:
            raise ValueError(
                f'TeacherEMAHook: {len(leaked)} teacher parameters (e.g. teacher.{leaked[0]}) '
                "are in the optimiser. Build it on the student (optim_wrapper=dict(constructor="
                "'StudentOptimWrapperConstructor', ...), as the configs do) or give optim_wrapper "
                "a paramwise_cfg (e.g. paramwise_cfg=dict(custom_keys={})): mmengine's "
                'DefaultOptimWrapperConstructor then skips parameters that do not require grad')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Set the model's training progress and log the scheduled values."""
        model = self._model(runner)
        model.set_progress(runner.iter / runner.max_iters)
        runner.message_hub.update_scalar('train/teacher_momentum', self.current_momentum(model))
        runner.message_hub.update_scalar('train/consistency_weight', model.consistency_weight)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """EMA-update the teacher when the interval says so."""
        if self._is_update_iter(runner):
            model = self._model(runner)
            self.ema_update(model, self.current_momentum(model))

    def current_momentum(self, model: nn.Module) -> float:
        """float: ``m`` at the model's current training progress."""
        return self.momentum(float(model.progress))

    def _is_update_iter(self, runner) -> bool:
        if self.interval == 'iter':
            return True
        if self.interval == 'visit':
            info = runner.train_loop.current_visit
            return info.iter_in_visit == info.visit_len - 1
        return (runner.iter + 1) % self.interval == 0

    @staticmethod
    def _tensor_pairs(model: nn.Module) -> Iterator[Tuple[Tensor, Tensor, bool]]:
        """(teacher tensor, student tensor, is_buffer) of every parameter, then buffer;
        ValueError if the two copies differ in structure."""
        for kind in ('parameters', 'buffers'):
            teacher_named = list(getattr(model.teacher, f'named_{kind}')())
            student_named = list(getattr(model.student, f'named_{kind}')())
            if [n for n, _ in teacher_named] != [n for n, _ in student_named]:
                raise ValueError(f'TeacherEMAHook: teacher and student have different '
                                 f'{kind}; build both from one config')
            for (name, teacher), (_, student) in zip(teacher_named, student_named):
                if teacher.shape != student.shape:
                    raise ValueError(f'TeacherEMAHook: {name} has shape '
                                     f'{tuple(teacher.shape)} in the teacher, '
                                     f'{tuple(student.shape)} in the student')
                yield teacher, student, kind == 'buffers'

    @torch.no_grad()
    def ema_update(self, model: nn.Module, momentum: float) -> None:
        """``teacher = m * teacher + (1 - m) * student`` in place, for every parameter and
        (with ``update_buffers``) floating-point buffer; the other buffers, and everything
        when ``m = 0``, are copied from the student.

        Args:
            model (nn.Module): the unwrapped student-teacher model.
            momentum (float): ``m``, the teacher's weight, in [0, 1].
        """
        for teacher, student, is_buffer in self._tensor_pairs(model):
            if (momentum == 0. or not teacher.is_floating_point()
                    or (is_buffer and not self.update_buffers)):
                teacher.copy_(student)
            else:
                # = m * teacher + (1 - m) * student; lerp leaves equal tensors (constant
                # buffers) exactly unchanged, where mul + add could drift by rounding
                teacher.lerp_(student, 1. - momentum)
