"""Scaling: step time and peak memory against input size and number of datasets (heads).

- Sizes: the config's ``FoundationX`` (student, no teacher) at each input size, one
  training step per task; the steps of every size and task are timed interleaved.
- Datasets: the model rebuilt with N datasets, every one with all three tasks (class lists
  of the config's first dataset of each task), at the config's size: parameter memory per
  part (backbone, per-dataset cls heads, shared DINO encoder, per-dataset DINO decoders,
  shared UperNet, per-dataset seg heads), AdamW state after the steps (AdamW creates the
  state of a parameter at its first gradient, so only the datasets trained so far have one),
  step time and peak memory of a step per task (on the first dataset, all N interleaved), and
  a least-squares line through the
  per-dataset parameter memory to show it grows linearly.
"""
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.config import Config
from torch import nn

from fxmm.structures import CLASS_KEYS
from fxmm.structures.cxr_data_sample import TASKS
from . import models
from .timing import interleaved, memory_kind, peak_memory, summarize

# parameter-name prefix -> part, longest first; per-dataset parts hold one module per dataset
PARTS = (('loc_head.branches', 'loc_decoders (per dataset)'),
         ('loc_head', 'loc_encoder (shared)'),
         ('cls_head', 'cls_heads (per dataset)'),
         ('seg_head', 'seg_heads (per dataset)'),
         ('seg_neck', 'upernet (shared)'),
         ('backbone', 'backbone (shared)'))


def param_mib_by_part(model: nn.Module) -> Dict[str, float]:
    """Parameter memory (MiB) of each :data:`PARTS` entry and ``total``."""
    out = {part: 0. for _, part in PARTS}
    for name, param in model.named_parameters():
        part = next((p for prefix, p in PARTS if name.startswith(prefix + '.')), 'other')
        out[part] = out.get(part, 0.) + param.numel() * param.element_size() / 2**20
    out['total'] = sum(out.values())
    return out


def optimizer_state_mib(optim_wrapper) -> float:
    """Memory of the optimiser state tensors (AdamW: two moments per trained parameter)."""
    return sum(v.numel() * v.element_size() for state in optim_wrapper.optimizer.state.values()
               for v in state.values() if hasattr(v, 'numel')) / 2**20


def replicated_datasets(cfg: Config, num: int) -> Dict[str, dict]:
    """``num`` datasets, each with every task the config's model has, class lists taken from
    its first dataset of each task."""
    datasets = models.foundation_x_cfg(cfg)['datasets']
    classes = {}
    for key in CLASS_KEYS.values():
        lists = [d[key] for d in datasets.values() if d.get(key)]
        if lists:
            classes[key] = list(lists[0])
    return {f'dataset{i:02d}': dict(classes) for i in range(num)}


def _task_steps(model: nn.Module, optim_wrapper, size: int, batch_size: int,
                tasks: Sequence[str]) -> Dict[str, callable]:
    return {task: (lambda b: lambda: model.train_step(b, optim_wrapper))(batch)
            for task, _, batch in models.task_batches(model, size, batch_size, tasks)}


def _curve(points: dict, batch_size: int, tasks: Sequence[str], repeats: int, warmup: int,
           device: str) -> dict:
    """Step time and peak memory of every point (key -> ``(model, optim_wrapper, size)``)
    and task, all (point, task) steps interleaved, so that a drift of the machine does not
    bend the curve.

    Returns:
        dict: key -> ``step_time`` (task -> seconds summary), ``peak_memory_mib`` (task ->
        MiB).
    """
    fns = {(key, task): fn for key, (model, optim_wrapper, size) in points.items()
           for task, fn in _task_steps(model, optim_wrapper, size, batch_size, tasks).items()}
    times = interleaved(fns, repeats, warmup, device)
    out = {key: dict(step_time={}, peak_memory_mib={}) for key in points}
    for (key, task), samples in times.items():
        out[key]['step_time'][task] = summarize(samples)
        out[key]['peak_memory_mib'][task] = peak_memory(fns[(key, task)], device)
    return out


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> dict:
    """Least-squares ``y = slope * x + intercept`` and its R^2."""
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    pred = slope * np.asarray(xs, float) + intercept
    ss_res = float(((np.asarray(ys) - pred)**2).sum())
    ss_tot = float(((np.asarray(ys) - np.mean(ys))**2).sum())
    return dict(slope=float(slope), intercept=float(intercept),
                r2=1. - ss_res / ss_tot if ss_tot > 0 else 1.)


def scaling_benchmark(cfg: Config,
                      device: str = 'cpu',
                      sizes: Sequence[int] = (224, 448, 512),
                      num_datasets: Sequence[int] = (3, 11, 30),
                      batch_size: int = 2,
                      repeats: int = 2,
                      warmup: int = 1,
                      amp: bool = False,
                      with_cp: bool = False,
                      size: Optional[int] = None,
                      tasks: Sequence[str] = TASKS) -> dict:
    """Measure both curves; see the module docstring.

    Returns:
        dict: ``settings``; ``sizes``: size -> ``step_time`` (task -> seconds summary) and
        ``peak_memory_mib`` (task -> MiB); ``datasets``: N -> ``param_mib`` (part -> MiB),
        ``optimizer_state_mib``, ``step_time``, ``peak_memory_mib``; ``fits``: part ->
        :func:`linear_fit` of its parameter MiB against N.
    """
    from .step import foundation_size
    base_size = size or foundation_size(cfg)
    out = dict(settings=dict(device=device, batch_size=batch_size, repeats=repeats,
                             warmup=warmup, amp=amp, with_cp=with_cp, datasets_size=base_size,
                             memory=memory_kind(device)), sizes={}, datasets={})
    points = {}
    for img_size in sizes:
        model = models.build_fx(models.student_config(cfg, img_size, with_cp), device)
        points[img_size] = (model, models.build_optimizer(model, cfg, amp), img_size)
    out['sizes'] = _curve(points, batch_size, tasks, repeats, warmup, device)
    points = {}
    for num in num_datasets:
        student_cfg = models.student_config(cfg, base_size, with_cp,
                                            datasets=replicated_datasets(cfg, num))
        model = models.build_fx(student_cfg, device)
        points[num] = (model, models.build_optimizer(model, cfg, amp), base_size)
    out['datasets'] = _curve(points, batch_size, tasks, repeats, warmup, device)
    for num, (model, optim_wrapper, _) in points.items():
        out['datasets'][num].update(param_mib=param_mib_by_part(model),
                                    optimizer_state_mib=optimizer_state_mib(optim_wrapper))
    del points
    nums = list(out['datasets'])
    parts = out['datasets'][nums[0]]['param_mib'] if nums else {}
    out['fits'] = {part: linear_fit(nums, [out['datasets'][n]['param_mib'][part] for n in nums])
                   for part in parts} if len(nums) >= 2 else {}
    return out
