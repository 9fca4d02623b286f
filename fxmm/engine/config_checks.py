"""Start-up checks of a run's config: a mistyped key fails before anything is built.

A config may hold any top-level variable, so only a key *close* to one the Runner reads
(``trian_cfg`` for ``train_cfg``) is an error; without the check such a typo is silently
ignored (``param_schedular`` trains without a schedule). The modules the Runner itself builds
(model, datasets, samplers, loops, hooks, ...) have their arguments checked against their
class; the modules those build in turn are checked when built, by
:func:`fxmm.registry.hints.hinted_build`.
"""
import difflib
import inspect
from typing import Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import Registry
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from fxmm.registry import (DATA_SAMPLERS, DATASETS, EVALUATOR, HOOKS, LOG_PROCESSORS, LOOPS,
                           METRICS, MODELS, OPTIM_WRAPPERS, PARAM_SCHEDULERS, VISUALIZERS)
from fxmm.registry.hints import unknown_argument_hint

# Top-level keys read outside ``Runner.__init__``'s arguments: by the Runner (model wrapping,
# compile, SyncBN), by fxmm's tools (runner_type) and by Config (custom_imports). Pipelines
# are not listed: configs keep several under similar names (`test_pipelines`).
EXTRA_RUNNER_KEYS = ('model_wrapper_cfg', 'compile', 'sync_bn', 'find_unused_parameters',
                     'strategy', 'runner_type', 'custom_imports')
# How similar (difflib ratio) an unknown key must be to a known one to count as its typo.
TYPO_CUTOFF = 0.8
# Keys of a dataloader config that mmengine's Runner.build_dataloader consumes itself.
_DATALOADER_KEYS = ('num_batch_per_epoch', 'disable_subprocess_warning')

Component = Tuple[str, dict, Optional[Registry], Tuple[str, ...]]


def runner_keys() -> List[str]:
    """The top-level config keys that are read by the Runner or by fxmm's tools."""
    params = inspect.signature(Runner.__init__).parameters
    return sorted(set(params) - {'self', 'cfg'} | set(EXTRA_RUNNER_KEYS))


def check_top_level_keys(cfg: Config) -> List[str]:
    """Find top-level keys that look like typos of a Runner key.

    Args:
        cfg (Config): the run's config.

    Returns:
        list[str]: one message per suspicious key, e.g. ``"config key 'trian_cfg' is not
        read by the Runner: did you mean 'train_cfg'?"``.
    """
    known = runner_keys()
    problems = []
    for key in cfg.keys():
        if key.startswith('_') or key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=TYPO_CUTOFF)
        if close:
            problems.append(f'config key {key!r} is not read by the Runner: did you mean '
                            f'{close[0]!r}? (rename it if it is a variable of your own)')
    return problems


def _items(value) -> list:
    """A module config or a list of them -> a list of module configs."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _components(cfg: Config) -> Iterator[Component]:
    """``(where, module config, registry, keys the Runner consumes)`` of every module the
    Runner builds from ``cfg``; registry None means a torch ``DataLoader``."""
    yield 'model', cfg.get('model'), MODELS, ()
    for phase in ('train', 'val', 'test'):
        loader = cfg.get(f'{phase}_dataloader')
        if isinstance(loader, dict):
            yield f'{phase}_dataloader', loader, None, _DATALOADER_KEYS
            yield f'{phase}_dataloader.dataset', loader.get('dataset'), DATASETS, ()
            yield f'{phase}_dataloader.sampler', loader.get('sampler'), DATA_SAMPLERS, ()
        yield f'{phase}_cfg', cfg.get(f'{phase}_cfg'), LOOPS, ()
    # the optimiser wrapper constructor consumes `constructor` and `paramwise_cfg`
    yield 'optim_wrapper', cfg.get('optim_wrapper'), OPTIM_WRAPPERS, \
        ('constructor', 'paramwise_cfg')
    for i, scheduler in enumerate(_items(cfg.get('param_scheduler'))):
        yield f'param_scheduler[{i}]', scheduler, PARAM_SCHEDULERS, ('convert_to_iter_based',)
    for name, hook in (cfg.get('default_hooks') or {}).items():
        yield f'default_hooks.{name}', hook, HOOKS, ('priority',)
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        yield f'custom_hooks[{i}]', hook, HOOKS, ('priority',)
    for name in ('val_evaluator', 'test_evaluator'):
        for i, metric in enumerate(_items(cfg.get(name))):
            yield f'{name}[{i}]', metric, METRICS, ()
    yield 'log_processor', cfg.get('log_processor'), LOG_PROCESSORS, ()
    yield 'visualizer', cfg.get('visualizer'), VISUALIZERS, ()


def _built_class(module_cfg: dict, registry: Optional[Registry]):
    """The class a module config builds; None when it cannot be told (no type, a type that
    is not registered - the build's KeyError names it)."""
    if registry is None:
        return DataLoader
    type_name = module_cfg.get('type')
    if not isinstance(type_name, str):
        return type_name if inspect.isclass(type_name) else None
    cls = registry.get(type_name)
    if cls is None and registry is METRICS:  # `dict(type='Evaluator', metrics=...)`
        cls = EVALUATOR.get(type_name)
    return cls if inspect.isclass(cls) else None


def check_component_args(cfg: Config) -> List[str]:
    """Find arguments that the modules built by the Runner do not take.

    Classes whose ``__init__`` takes ``**kwargs`` are not checked (any key may be valid).
    Types are resolved in fxmm's registries, so this runs only for configs whose
    ``default_scope`` is ``'fxmm'`` (or unset).

    Args:
        cfg (Config): the run's config.

    Returns:
        list[str]: one message per unknown argument, e.g. ``"train_dataloader.sampler:
        MultiTaskSampler does not take 'bacth_size': did you mean 'batch_size'?"``.
    """
    if cfg.get('default_scope', 'fxmm') != 'fxmm':
        return []
    problems = []
    for where, module_cfg, registry, consumed in _components(cfg):
        if not isinstance(module_cfg, dict):
            continue
        cls = _built_class(module_cfg, registry)
        if cls is None:
            continue
        params = inspect.signature(cls).parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            continue
        allowed = set(params) | set(consumed) | {'type', '_scope_'}
        for key in module_cfg:
            if key not in allowed:
                problems.append(f'{where}: {cls.__name__} does not take {key!r}: '
                                f'{unknown_argument_hint(cls, key)}')
    return problems


def check_config(cfg: Config) -> None:
    """Check a run's config before the Runner is built (``tools/train.py``, ``test.py``).

    Args:
        cfg (Config): the run's config.

    Raises:
        ValueError: listing every top-level key that looks like a typo of a Runner key and
            every argument a Runner-built module does not take, each with its close match.
    """
    problems = check_top_level_keys(cfg) + check_component_args(cfg)
    if problems:
        source = f' {cfg.filename}' if cfg.filename else ''
        raise ValueError(f'config{source} has unknown keys:\n  ' + '\n  '.join(problems))
