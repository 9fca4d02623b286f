"""Training-step cost of Foundation X per task against the single-task OpenMMLab models.

Per task (cls / loc / seg), one training step (data preprocessor, forward, backward,
clipping, AdamW step: ``model.train_step`` with the config's optim wrapper) of five
candidates, timed interleaved on the same batch:

- ``reference``: the single-task model of :mod:`.models`;
- ``fx``: the config's ``FoundationX`` without a teacher;
- ``fx_locked``: the same model during a locked phase of :class:`LockReleaseHook`;
- ``fx_teacher``: ``TeacherStudent`` (EMA teacher forward + consistency loss);
- ``fx_teacher_locked``: that model during a locked phase.

The locked phases are those of the real hook (``before_train`` / ``before_train_iter`` on a
minimal runner), switched before each call of a candidate, outside the timed region.
"""
import logging
from types import SimpleNamespace
from typing import Optional, Sequence

import torch
from mmengine.config import Config
from torch import nn

from fxmm.datasets.samplers.multi_task_sampler import VisitInfo
from fxmm.engine.hooks.lock_release_hook import LockReleaseHook
from fxmm.structures.cxr_data_sample import TASKS, pair_name
from . import models
from .timing import (interleaved, memory_kind, paired_ratio, peak_memory, profile_table,
                     summarize)

# target ratios of the issue (numerator candidate, denominator candidate, bound)
STEP_TARGETS = dict(
    fx_vs_reference=('fx', 'reference', 1.05),
    teacher_vs_reference=('fx_teacher', 'reference', 1.40),
    locked_vs_released=('fx_locked', 'fx', 0.75),
    teacher_locked_vs_released=('fx_teacher_locked', 'fx_teacher', 0.75),
)


class LockPhase:
    """Drive a :class:`LockReleaseHook` by hand: lock or release one pair of a model.

    Args:
        model (nn.Module): a ``FoundationX`` or ``TeacherStudent`` (its student is locked).
        optim_wrapper: the model's optim wrapper (the hook checks the locked parameters are
            in it).
        lock_modules (dict, optional): the hook's ``lock_modules``; None = its default.
    """

    def __init__(self, model: nn.Module, optim_wrapper, lock_modules: Optional[dict] = None):
        self.hook = LockReleaseHook(lock_tasks=TASKS, lock_modules=lock_modules)
        logger = logging.getLogger('fxmm.benchmark.lock')
        logger.setLevel(logging.WARNING)  # no 'lock ... / release ...' line every call
        self.runner = SimpleNamespace(model=model, optim_wrapper=optim_wrapper, iter=0,
                                      logger=logger,
                                      train_loop=SimpleNamespace(current_visit=None))
        self.hook.before_train(self.runner)

    def set(self, dataset: str, task: str, locked: bool) -> None:
        """Enter the locked (first) or released (second) iteration of a 2-iteration visit."""
        self.runner.train_loop.current_visit = VisitInfo(
            visit=0, pair_idx=0, pair_name=pair_name(dataset, task), task=task,
            iter_in_visit=0 if locked else 1, visit_len=2)
        self.hook.before_train_iter(self.runner, 0)

    def params(self, task: str):
        """The parameters the hook freezes for ``task``."""
        return self.hook._params[task]


def lock_modules_of(cfg: Config) -> Optional[dict]:
    """``lock_modules`` of the config's LockReleaseHook, None when it uses the default."""
    for hook in cfg.get('custom_hooks', []):
        if hook.get('type') == 'LockReleaseHook':
            return hook.get('lock_modules')
    return None


def check_locked_step(model: nn.Module, optim_wrapper, phase: LockPhase, batch: dict,
                      dataset: str, task: str) -> dict:
    """One locked training step taken apart, to show that the frozen part does no work.

    Returns:
        dict: ``num_locked_params``; ``grad_none_after_backward`` (no frozen parameter got a
        ``.grad``: autograd did not run through them); ``unchanged_after_step`` (bit-identical
        after the AdamW step: no weight decay, no moment update); ``released_grads`` (the
        number of them that do get a gradient in a released step, the control).
    """
    params = phase.params(task)
    phase.set(dataset, task, locked=True)
    before = [p.detach().clone() for p in params]
    with optim_wrapper.optim_context(model):
        data = model.data_preprocessor(batch, True)
        losses = model._run_forward(data, mode='loss')
    loss, _ = model.parse_losses(losses)
    optim_wrapper.backward(loss)
    grad_none = all(p.grad is None for p in params)
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    unchanged = all(torch.equal(b, p.detach()) for b, p in zip(before, params))
    phase.set(dataset, task, locked=False)
    with optim_wrapper.optim_context(model):
        losses = model._run_forward(model.data_preprocessor(batch, True), mode='loss')
    optim_wrapper.backward(model.parse_losses(losses)[0])
    released = sum(p.grad is not None for p in params)
    optim_wrapper.zero_grad()
    return dict(num_locked_params=len(params), grad_none_after_backward=grad_none,
                unchanged_after_step=unchanged, released_grads=released)


def step_benchmark(cfg: Config,
                   device: str = 'cpu',
                   size: Optional[int] = None,
                   batch_size: Optional[int] = None,
                   repeats: int = 5,
                   warmup: int = 1,
                   amp: bool = False,
                   with_cp: bool = False,
                   tasks: Sequence[str] = TASKS,
                   profile: bool = True) -> dict:
    """Time the five candidates per task; see the module docstring.

    Args:
        cfg (Config): an fxmm config (``model`` a FoundationX or TeacherStudent).
        device (str): ``'cpu'`` or ``'cuda'``.
        size (int, optional): input size; None = the backbone's ``img_size``.
        batch_size (int, optional): None = ``train_dataloader.batch_size``. At least 2 (the
            UperNet's batch norm needs it in training).
        repeats, warmup (int): timed and untimed interleaved rounds.
        amp (bool): bf16 autocast through the AMP optim wrapper.
        with_cp (bool): gradient checkpointing of the Swin stages (FX and references).
        tasks (Sequence[str]): the tasks to measure (those the model has).
        profile (bool): attach ``torch.profiler`` tables of both candidates of every target
            that is not met.

    Returns:
        dict: ``settings`` and, per task, ``dataset``, ``times`` (candidate -> seconds
        summary), ``samples_per_s``, ``peak_memory_mib``, ``ratios`` (target name ->
        per-round ratio summary, ``target``, ``met``), ``locked_check`` and ``profiles``.
    """
    size = size or foundation_size(cfg)
    batch_size = batch_size or cfg.train_dataloader.batch_size
    if batch_size < 2:
        raise ValueError('step benchmark: batch_size must be >= 2 (batch norm in training)')
    student_cfg = models.student_config(cfg, size, with_cp)
    fx = models.build_fx(student_cfg, device)
    pair = models.build_fx(student_cfg, device, teacher=True,
                           consistency_weight=models.consistency_weight_of(cfg))
    fx_optim, pair_optim = (models.build_optimizer(m, cfg, amp) for m in (fx, pair))
    lock_modules = lock_modules_of(cfg)
    fx_lock = LockPhase(fx, fx_optim, lock_modules)
    pair_lock = LockPhase(pair, pair_optim, lock_modules)
    out = dict(settings=dict(device=device, size=size, batch_size=batch_size, repeats=repeats,
                             warmup=warmup, amp=amp, with_cp=with_cp,
                             memory=memory_kind(device)), tasks={})
    for task, dataset, batch in models.task_batches(fx, size, batch_size, tasks):
        reference = models.build_reference(fx, student_cfg, task, dataset, device)
        ref_optim = models.build_optimizer(reference, cfg, amp)
        ref_batch = models.reference_batch(batch, task)
        fns = dict(reference=lambda: reference.train_step(ref_batch, ref_optim),
                   fx=lambda: fx.train_step(batch, fx_optim),
                   fx_locked=lambda: fx.train_step(batch, fx_optim),
                   fx_teacher=lambda: pair.train_step(batch, pair_optim),
                   fx_teacher_locked=lambda: pair.train_step(batch, pair_optim))
        setups = dict(fx=lambda: fx_lock.set(dataset, task, False),
                      fx_locked=lambda: fx_lock.set(dataset, task, True),
                      fx_teacher=lambda: pair_lock.set(dataset, task, False),
                      fx_teacher_locked=lambda: pair_lock.set(dataset, task, True))
        times = interleaved(fns, repeats, warmup, device, setups)
        result = dict(dataset=dataset, times={k: summarize(v) for k, v in times.items()})
        result['samples_per_s'] = {k: batch_size / v['median'] for k, v in result['times'].items()}
        result['ratios'] = {}
        for name, (num, den, bound) in STEP_TARGETS.items():
            ratio = paired_ratio(times[num], [times[den]])
            result['ratios'][name] = dict(ratio, target=bound, met=ratio['median'] <= bound)
        result['peak_memory_mib'] = {}
        for name, fn in fns.items():
            if name in setups:
                setups[name]()
            result['peak_memory_mib'][name] = peak_memory(fn, device)
        result['locked_check'] = dict(
            fx=check_locked_step(fx, fx_optim, fx_lock, batch, dataset, task),
            fx_teacher=check_locked_step(pair, pair_optim, pair_lock, batch, dataset, task))
        result['profiles'] = {}
        if profile:
            for name, ratio in result['ratios'].items():
                for candidate in STEP_TARGETS[name][:2] if not ratio['met'] else ():
                    if candidate not in result['profiles']:
                        setups.get(candidate, lambda: None)()
                        result['profiles'][candidate] = profile_table(fns[candidate], device)
        fx_lock.set(dataset, task, False)
        pair_lock.set(dataset, task, False)
        out['tasks'][task] = result
    return out


def foundation_size(cfg: Config) -> int:
    """The input size of the config: its backbone's ``img_size`` (an int or (H, W))."""
    img_size = models.foundation_x_cfg(cfg)['backbone'].get('img_size', 224)
    return int(img_size[0] if isinstance(img_size, (tuple, list)) else img_size)


def mmcv_cuda_ops() -> bool:
    """Whether mmcv's compiled deformable-attention op is there (used on CUDA tensors; on CPU
    mmcv falls back to its PyTorch implementation)."""
    try:
        from mmcv.utils import ext_loader
        ext_loader.load_ext('_ext', ['ms_deform_attn_forward'])
        return True
    except (ImportError, AttributeError, AssertionError):
        return False


def variants_benchmark(cfg: Config, device: str = 'cuda', size: Optional[int] = None,
                       batch_size: Optional[int] = None, repeats: int = 5,
                       warmup: int = 2) -> dict:
    """Samples/s of the configured model (teacher included when it has one) per task, with
    AMP (bf16) off/on x gradient checkpointing off/on: the four variants of one task are
    timed interleaved.

    Returns:
        dict: ``settings`` (with ``mmcv_cuda_ops``) and task -> variant (``'amp=0,cp=0'``,
        ...) -> ``samples_per_s``, ``step_time`` summary and ``peak_memory_mib``, or
        ``error`` for a variant whose first step raised.
    """
    size = size or foundation_size(cfg)
    batch_size = batch_size or cfg.train_dataloader.batch_size
    teacher = cfg.model.get('type') == 'TeacherStudent'
    built = {}
    for amp in (False, True):
        for with_cp in (False, True):
            model = models.build_fx(models.student_config(cfg, size, with_cp), device, teacher,
                                    models.consistency_weight_of(cfg))
            built[f'amp={int(amp)},cp={int(with_cp)}'] = (
                model, models.build_optimizer(model, cfg, amp))
    student = next(iter(built.values()))[0]
    student = getattr(student, 'student', student)
    out = dict(settings=dict(device=device, size=size, batch_size=batch_size, teacher=teacher,
                             repeats=repeats, warmup=warmup, mmcv_cuda_ops=mmcv_cuda_ops(),
                             memory=memory_kind(device)), tasks={})
    for task, _, batch in models.task_batches(student, size, batch_size):
        fns = {name: (lambda m, o: lambda: m.train_step(batch, o))(m, o)
               for name, (m, o) in built.items()}
        out['tasks'][task] = {}
        for name in list(fns):  # a variant that fails is reported, not fatal
            try:
                fns[name]()
            except (RuntimeError, ValueError) as err:
                out['tasks'][task][name] = dict(error=f'{type(err).__name__}: {err}'[:300])
                del fns[name]
        times = interleaved(fns, repeats, warmup, device)
        out['tasks'][task].update({
            name: dict(samples_per_s=batch_size / summarize(t)['median'],
                       step_time=summarize(t), peak_memory_mib=peak_memory(fns[name], device))
            for name, t in times.items()})
    return out
