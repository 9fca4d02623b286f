"""Lock-Release: freeze the shared layers at the start of a visit, release them later.

Foundation X (Islam et al., WACV 2025, https://arxiv.org/abs/2503.09860): on a visit to a
(dataset, task) pair whose task is locked, the task's head first adapts to the shared
features ("lock") before it may change them ("release").
"""
import logging
import math
from fractions import Fraction
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from fxmm.registry import HOOKS
from fxmm.structures.cxr_data_sample import check_task

MODES = ('fraction', 'extra_pass')


@HOOKS.register_module()
class LockReleaseHook(Hook):
    """Freeze the shared modules of a task for the first part of each visit to its pairs.

    The lock state of an iteration is a function of its visit alone, read from the train
    loop's ``current_visit`` (a :class:`~fxmm.datasets.samplers.multi_task_sampler.VisitInfo`
    set by :class:`~fxmm.engine.runner.cyclic_train_loop.CyclicTrainLoop` before the
    ``before_train_iter`` hooks): iteration ``iter_in_visit`` of a visit of ``visit_len``
    iterations to a pair of task ``t`` is locked iff ``t in lock_tasks`` and
    ``iter_in_visit < n_locked(visit_len)``, where

    - ``mode='fraction'``: ``n_locked = floor(lock_fraction * visit_len)`` (visit_len 4,
      fraction 0.5: iterations 0 and 1 locked, 2 and 3 released);
    - ``mode='extra_pass'`` (the authors' code: a full pass locked, then a further full
      pass released): ``n_locked = visit_len // 2``, and every visit to a pair of a locked
      task must last two passes over the pair: set the sampler's
      ``iters_per_visit={'<dataset>.<task>': 2 * <one pass>, ...}`` for those pairs
      (:meth:`before_train` checks it and names the values when they are wrong).

    When the state changes (``before_train_iter``), the parameters of the task's shared
    modules get ``requires_grad_(False)`` (lock) or ``requires_grad_(True)`` (release), and
    the logger says ``'lock <pair> at iter N (visit k)'`` / ``'release <pair> at iter N (visit
    k)'`` (``N`` = ``runner.iter``, the 0-based iteration about to run). While locked, their
    ``.grad`` is set to None before every step, so AdamW moves nothing (no decay, no moment);
    with ``norm_eval=True`` their BatchNorm layers are kept in eval mode. At the end of
    training everything is released. In the sampler's ``'mixed'`` mode each iteration follows
    its own visit.

    :meth:`before_train` raises for what Lock-Release cannot work with: a loop without
    visits, a parameter to lock missing from the optimiser, DDP without
    ``find_unused_parameters=True``, ``'extra_pass'`` visits of the wrong length. Parameters
    that do not require grad at :meth:`before_train` (a teacher, stages frozen by
    ``frozen_stages``) are never touched. Why each of these holds - the optimiser, DDP,
    resume, BatchNorm - is in ``docs/design.md`` ("Lock-Release").

    Example:
        >>> custom_hooks = [
        ...     dict(type='LockReleaseHook', lock_tasks=('loc', 'seg'), lock_fraction=0.5)]
        >>> # DDP: model_wrapper_cfg=dict(type='MMDistributedDataParallel',
        >>> #                             find_unused_parameters=True)

    Args:
        lock_tasks (Sequence[str]): the tasks whose visits lock (FX: loc and seg; FX+ adds
            cls). Defaults to ('loc', 'seg').
        lock_fraction (float, optional): ``mode='fraction'`` only: the locked share of each
            visit, in (0, 1]. None means 0.5. Defaults to None.
        mode (str): ``'fraction'`` or ``'extra_pass'``, see above. Defaults to 'fraction'.
        lock_modules (dict[str, Sequence[str]], optional): task -> the modules or parameters
            to freeze for that task, as prefixes of the (student's, for a ``TeacherStudent``)
            parameter names (``'loc_head.encoder'`` matches ``'loc_head.encoder.layers.0...'``,
            not ``'loc_head.encoder_x'``). Every lock task needs an entry; every entry must
            match some parameter. None asks the model: ``model.shared_modules(task)`` of each
            lock task (:meth:`~fxmm.models.FoundationX.shared_modules`: the backbone and the
            task's shared neck or encoder). Defaults to None.
        norm_eval (bool): keep the BatchNorm layers of the locked modules in eval mode while
            locked. Defaults to False (their statistics follow the batches).
    """

    def __init__(self,
                 lock_tasks: Sequence[str] = ('loc', 'seg'),
                 lock_fraction: Optional[float] = None,
                 mode: str = 'fraction',
                 lock_modules: Optional[Dict[str, Sequence[str]]] = None,
                 norm_eval: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f'LockReleaseHook: mode must be one of {MODES}, got {mode!r}')
        if mode == 'extra_pass' and lock_fraction is not None:
            raise ValueError("LockReleaseHook: mode='extra_pass' locks the first of two passes "
                             f'per visit; lock_fraction ({lock_fraction}) applies to '
                             "mode='fraction' only")
        if lock_fraction is None:
            lock_fraction = 0.5
        if not 0 < lock_fraction <= 1:
            raise ValueError(f'LockReleaseHook: lock_fraction must be in (0, 1], got '
                             f'{lock_fraction!r}')
        if isinstance(lock_tasks, str):
            raise TypeError(f'LockReleaseHook: lock_tasks must be a sequence of tasks, got the '
                            f'string {lock_tasks!r}')
        self.lock_tasks = tuple(check_task(task) for task in lock_tasks)
        #: task -> prefixes as given; None: asked of the model in before_train
        self.lock_modules = (None if lock_modules is None else
                             self._check_lock_modules(lock_modules, self.lock_tasks))
        self.mode = mode
        self.norm_eval = norm_eval
        # exact rational: 0.29 * 100 locks 29 iterations (in floats it is 28.999999999999996)
        self.lock_fraction = Fraction(lock_fraction).limit_denominator(10**6)
        # task -> the prefixes in force (lock_modules or the model's), set in before_train
        self._modules: Dict[str, Tuple[str, ...]] = {}
        # task -> parameters it locks (those trainable at before_train), set in before_train
        self._params: Dict[str, List[nn.Parameter]] = {}
        # task -> BatchNorm layers under its prefixes (kept in eval mode while locked when
        # norm_eval), set in before_train
        self._norms: Dict[str, List[_BatchNorm]] = {}
        # (visit, pair name, task) of the lock in force, None when released
        self._locked: Optional[Tuple[int, str, str]] = None

    @staticmethod
    def _check_lock_modules(lock_modules: Dict[str, Sequence[str]],
                            lock_tasks: Tuple[str, ...]) -> Dict[str, Tuple[str, ...]]:
        """Validate the task -> prefixes dict; every lock task needs a non-empty entry."""
        checked = {}
        for task, prefixes in lock_modules.items():
            check_task(task)
            if isinstance(prefixes, str) or not prefixes or not all(
                    isinstance(p, str) and p for p in prefixes):
                raise ValueError(f'LockReleaseHook: lock_modules[{task!r}] must be a non-empty '
                                 f'list of module names, got {prefixes!r}')
            checked[task] = tuple(prefixes)
        missing = [task for task in lock_tasks if task not in checked]
        if missing:
            raise ValueError(f'LockReleaseHook: lock_tasks {lock_tasks} need lock_modules '
                             f'entries; missing {missing}')
        return checked

    def num_locked(self, visit_len: int) -> int:
        """The number of locked iterations at the start of a visit of ``visit_len``."""
        if self.mode == 'extra_pass':
            return visit_len // 2
        return math.floor(self.lock_fraction * visit_len)

    def is_locked(self, info) -> bool:
        """Whether the iteration described by ``info`` (a ``VisitInfo``) is locked."""
        return (info.task in self.lock_tasks
                and info.iter_in_visit < self.num_locked(info.visit_len))

    def _shared_modules(self, model: nn.Module) -> Dict[str, Tuple[str, ...]]:
        """Each lock task's shared modules, as ``model.shared_modules(task)`` names them."""
        if not callable(getattr(model, 'shared_modules', None)):
            raise TypeError(f'LockReleaseHook: {type(model).__name__} does not name the modules '
                            'each task shares (no shared_modules(task) method, as FoundationX '
                            'has); give the hook lock_modules=dict(<task>=[<prefix>, ...])')
        modules = {}
        for task in self.lock_tasks:
            try:
                modules[task] = tuple(model.shared_modules(task))
            except ValueError as err:
                raise ValueError(f'LockReleaseHook: lock task {task!r}: {err}; leave it out of '
                                 'lock_tasks') from err
        return modules

    def before_train(self, runner) -> None:
        """Resolve the modules to lock on the model and check the loop, sampler, optimiser
        and DDP wrapper; raise a clear error for anything Lock-Release cannot work with."""
        if not hasattr(runner.train_loop, 'current_visit'):
            raise TypeError('LockReleaseHook needs a train loop that reports the visit '
                            "(train_cfg=dict(type='CyclicTrainLoop', ...)), got "
                            f'{type(runner.train_loop).__name__}')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        # with a TeacherStudent model the prefixes name the student's modules (the teacher
        # is frozen anyway and never in the optimiser)
        trained = getattr(model, 'student', model)
        self._modules = self.lock_modules or self._shared_modules(trained)
        self._params = {task: self._resolve(trained, task, prefixes)
                        for task, prefixes in self._modules.items()}
        self._norms = {task: [m for name, m in trained.named_modules()
                              if isinstance(m, _BatchNorm)
                              and any(self._matches(name, p) for p in prefixes)]
                       for task, prefixes in self._modules.items()} if self.norm_eval else {}
        self._check_optimizer(runner.optim_wrapper, model)
        self._check_ddp(runner.model)
        self._check_sampler(getattr(runner.train_loop, 'sampler', None))
        self._warn_frozen_stages(trained)
        self._locked = None

    @staticmethod
    def _matches(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + '.')

    def _resolve(self, model: nn.Module, task: str,
                 prefixes: Tuple[str, ...]) -> List[nn.Parameter]:
        """The trainable parameters of ``model`` under ``prefixes``; ValueError for a prefix
        that matches no parameter, naming the model's top-level children."""
        named = list(model.named_parameters())
        params, seen = [], set()
        for prefix in prefixes:
            matched = [(n, p) for n, p in named if self._matches(n, prefix)]
            if not matched:
                children = [name for name, _ in model.named_children()]
                raise ValueError(f'LockReleaseHook: lock_modules[{task!r}] prefix {prefix!r} '
                                 f'matches no parameter of {type(model).__name__}; its '
                                 f'top-level children are {children}')
            trainable = [p for _, p in matched if p.requires_grad]
            if not trainable:
                print_log(f'LockReleaseHook: lock_modules[{task!r}] prefix {prefix!r} has no '
                          'trainable parameter; nothing to lock there', logger='current',
                          level=logging.WARNING)
            params.extend(p for p in trainable if id(p) not in seen)
            seen.update(id(p) for p in trainable)
        return params

    def _check_optimizer(self, optim_wrapper, model: nn.Module) -> None:
        """Every parameter to lock must be in the optimiser, or it would never train."""
        groups = optim_wrapper.param_groups
        if isinstance(groups, dict):  # OptimWrapperDict: name -> param groups
            groups = [group for value in groups.values() for group in value]
        in_optimizer = {id(p) for group in groups for p in group['params']}
        names = {id(p): n for n, p in model.named_parameters()}
        missing = sorted({names[id(p)] for params in self._params.values() for p in params
                          if id(p) not in in_optimizer})
        if missing:
            raise RuntimeError(f'LockReleaseHook: {len(missing)} parameter(s) to lock are not '
                               f'in the optimiser (e.g. {missing[:3]}), so they would never '
                               'train after release; were they frozen before the optimiser '
                               'was built? Lock-Release must do the freezing.')

    @staticmethod
    def _check_ddp(model: nn.Module) -> None:
        """DDP must tolerate parameters that stop receiving gradients."""
        if isinstance(model, DistributedDataParallel) and (
                not model.find_unused_parameters or model.static_graph):
            raise ValueError('LockReleaseHook: under DDP, frozen parameters get no gradient; '
                             'wrap with find_unused_parameters=True and without static_graph '
                             "(model_wrapper_cfg=dict(type='MMDistributedDataParallel', "
                             'find_unused_parameters=True))')

    def _check_sampler(self, sampler) -> None:
        """Check the visit lengths of the locked pairs against the mode (when the loop
        exposes a ``MultiTaskSampler``; ``'extra_pass'`` requires one)."""
        if sampler is None or not hasattr(sampler, 'visit_lens'):
            if self.mode == 'extra_pass':
                raise TypeError("LockReleaseHook(mode='extra_pass') needs the train loop's "
                                'MultiTaskSampler (train_loop.sampler) to check the visit '
                                'lengths')
            return
        locked = [(name, n, size) for name, task, n, size in zip(
            sampler.pair_names, sampler.tasks, sampler.visit_lens, sampler.sizes)
            if task in self.lock_tasks]
        if self.mode == 'extra_pass':
            # one pass = MultiTaskSampler's default visit length
            two_passes = {name: 2 * math.ceil(size / (sampler.batch_size * sampler.world_size))
                          for name, _, size in locked}
            wrong = {name: n for name, n, _ in locked if n != two_passes[name]}
            if wrong:
                raise ValueError("LockReleaseHook(mode='extra_pass'): visits to locked pairs "
                                 f'must last two passes; got {wrong} iterations, set the '
                                 f'sampler\'s iters_per_visit={two_passes}')
        never = sorted(name for name, n, _ in locked if self.num_locked(n) == 0)
        if never:
            print_log(f'LockReleaseHook: the visits of {never} are too short to lock any '
                      f'iteration (lock_fraction={float(self.lock_fraction)})',
                      logger='current', level=logging.WARNING)

    def _warn_frozen_stages(self, model: nn.Module) -> None:
        """Warn about modules under a lock prefix that freeze stages themselves."""
        prefixes = {p for prefixes in self._modules.values() for p in prefixes}
        for name, module in model.named_modules():
            frozen_stages = getattr(module, 'frozen_stages', -1)
            if (isinstance(frozen_stages, int) and frozen_stages >= 0
                    and any(self._matches(name, p) for p in prefixes)):
                print_log(f'LockReleaseHook: {name} ({type(module).__name__}) has '
                          f'frozen_stages={frozen_stages}; those stages stay frozen through '
                          'every release. Set frozen_stages=-1 to let Lock-Release control '
                          'the freezing.', logger='current', level=logging.WARNING)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Lock or release when the state of this iteration differs from the last one, and
        clear the frozen parameters' grads before the step of a locked iteration."""
        info = runner.train_loop.current_visit
        target = (info.visit, info.pair_name, info.task) if self.is_locked(info) else None
        if target != self._locked:
            if self._locked is not None:
                self._release(runner)
            if target is not None:
                self._set_trainable(self._params[info.task], False)
                runner.logger.info(f'lock {info.pair_name} at iter {runner.iter} (visit '
                                   f'{info.visit}): {len(self._params[info.task])} params of '
                                   f'{list(self._modules[info.task])} frozen')
            self._locked = target
        if self._locked is not None:
            for param in self._params[self._locked[2]]:
                param.grad = None
            for norm in self._norms.get(self._locked[2], ()):
                norm.eval()

    def _release(self, runner, suffix: str = '') -> None:
        visit, pair, task = self._locked
        self._set_trainable(self._params[task], True)
        training = getattr(runner.model, 'training', True)
        for norm in self._norms.get(task, ()):
            norm.train(training)
        runner.logger.info(f'release {pair} at iter {runner.iter} (visit {visit}){suffix}')
        self._locked = None

    @staticmethod
    def _set_trainable(params: List[nn.Parameter], trainable: bool) -> None:
        for param in params:
            param.requires_grad_(trainable)

    def after_train(self, runner) -> None:
        """Release a lock still in force, leaving every managed parameter trainable."""
        if self._locked is not None:
            self._release(runner, ', the end of training')
