"""Measure forgetting in cyclic training: each pair's metric around its own visits, and how
far every visit moves the shared layers."""
import json
import os
import os.path as osp
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import get_rank
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn

from fxmm.engine.runner.tested_model import unwrap_tested_model
from fxmm.registry import DATASETS, HOOKS
from fxmm.models.teacher_student import COPIES
from fxmm.structures import TASKS


def default_drift_groups(model: nn.Module) -> Dict[str, tuple]:
    """The shared parts of a ``FoundationX`` as drift groups: the backbone, and each task's
    other shared modules (``model.shared_modules(task)``, the modules Lock-Release
    freezes), e.g. ``{'backbone': ('backbone',), 'loc': ('loc_head.neck', ...), 'seg':
    ('seg_neck',)}``; tasks the model has no path for, or with nothing shared besides the
    backbone, get no group."""
    groups = {'backbone': ('backbone', )}
    for task in TASKS:
        if not model.task_datasets[task]:
            continue
        own = tuple(p for p in model.shared_modules(task) if p != 'backbone')
        if own:
            groups[task] = own
    return groups


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + '.') for p in prefixes)


@HOOKS.register_module()
class ForgettingProbeHook(Hook):
    """Probe, during cyclic training, what a visit teaches and what the other visits take away.

    Around every visit ``k`` (pair ``p = k mod N`` of cycle ``c = k // N``) the hook
    evaluates pair ``p`` on (a subset of) a validation set twice: just *before* the visit's
    first iteration (after the ``N - 1`` visits to the other pairs since its last visit) and
    just *after* its last one.

    A pair's ``after`` in cycle ``c`` minus its ``before`` in cycle ``c + 1`` is what the
    foreign visits between them cost it, its ``after`` minus its ``before`` in one cycle
    what its own visit taught it (``tools/analysis_tools/forgetting.py`` reads the
    records, plots the curves and averages the drops). Each metric is the headline of
    :class:`~fxmm.evaluation.MultiTaskMetric` for the pair's task (cls ``AUC``, loc
    ``mAP40``, seg ``Dice``), in 0..1. A ``TeacherStudent`` has both copies evaluated.

    Every visit also gets the *drift* of the shared layers: for each group of
    ``drift_groups``, ``||w_end - w_start|| / ||w_start||`` over the group's parameters
    (student and, if present, teacher), ``w_start`` taken before the visit's first
    iteration and ``w_end`` after its last (after the teacher's EMA update: the hook runs at
    priority ``'LOW'``, after ``TeacherEMAHook``).

    Records go to ``<work_dir>/<out_file>``, one JSON object a line (appended, so a resumed
    run adds to it; the reader keeps the last record of each key)::

        {"kind": "probe", "visit": 10, "cycle": 1, "trained": "phantom_loc.loc",
         "pair": "phantom_loc.loc", "when": "before", "copy": "student", "metric": "mAP40",
         "value": 0.21, "num_samples": 48}
        {"kind": "drift", "visit": 9, "cycle": 1, "trained": "phantom_loc.cls", "task": "cls",
         "copy": "student", "group": "backbone", "relative": 0.004, "norm": 31.2}

    The probes do not change training: every module's train/eval mode is restored, no
    random number is drawn that training would see (``CyclicTrainLoop`` reseeds every
    iteration) and the probe data are read in the hook's process. They cost about
    ``2 * num_samples`` test images (twice that for a teacher-student model) per probed
    visit; the log reports the time spent. Under DDP every rank evaluates the whole subset
    (rank 0 writes).

    Example:
        >>> custom_hooks = [dict(type='ForgettingProbeHook',
        ...                      dataset=val_dataloader['dataset'], num_samples=48)]

    Args:
        dataset (dict): the validation set, a ``MultiTaskDataset`` config whose pairs are
            the training pairs, in the same order (checked by pair name).
        num_samples (int, optional): the first ``num_samples`` images of each pair are
            evaluated; None for all. Defaults to None.
        batch_size (int): images per forward pass. Defaults to 8.
        cycle_interval (int): probe the visits of every ``cycle_interval``-th cycle, and the
            ``before`` of the cycle after each (its drops). Defaults to 1.
        evaluator (dict): the metric. Defaults to ``dict(type='MultiTaskMetric')``.
        drift_groups (dict[str, Sequence[str]], optional): group name -> parameter name
            prefixes of the (student) model. None means :func:`default_drift_groups` of the model;
            groups matching no parameter are left out.
        out_file (str): the records' file, relative to the work dir. Defaults to
            ``'forgetting.jsonl'``.
    """

    priority = 'LOW'

    def __init__(self,
                 dataset: dict,
                 num_samples: Optional[int] = None,
                 batch_size: int = 8,
                 cycle_interval: int = 1,
                 evaluator: dict = dict(type='MultiTaskMetric'),
                 drift_groups: Optional[Dict[str, Sequence[str]]] = None,
                 out_file: str = 'forgetting.jsonl') -> None:
        for name, value in (('batch_size', batch_size), ('cycle_interval', cycle_interval)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f'ForgettingProbeHook: {name} must be an int >= 1, got '
                                 f'{value!r}')
        if num_samples is not None and not (isinstance(num_samples, int) and num_samples >= 1):
            raise ValueError(f'ForgettingProbeHook: num_samples must be None or an int >= 1, '
                             f'got {num_samples!r}')
        self.dataset_cfg = dataset
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.cycle_interval = cycle_interval
        self.evaluator_cfg = evaluator
        self.drift_groups = drift_groups
        self.out_file = out_file
        self._start: Dict[tuple, torch.Tensor] = {}
        self._seconds = 0.

    # ----- set-up -----
    def before_train(self, runner) -> None:
        """Build the probe set and the evaluator; check the pairs and the loop."""
        loop = runner.train_loop
        if not hasattr(loop, 'current_visit') or getattr(loop.sampler, 'mode', None) != 'cyclic':
            raise TypeError('ForgettingProbeHook needs cyclic visits: train_cfg=dict(type='
                            "'CyclicTrainLoop', ...) with a MultiTaskSampler(mode='cyclic')")
        self.dataset = DATASETS.build(self.dataset_cfg)
        names = list(self.dataset.pair_names)
        trained = list(loop.sampler.pair_names)
        if names != trained:
            raise ValueError(f'ForgettingProbeHook: the probe dataset has the pairs {names}, '
                             f'training visits {trained}; give the validation set of the '
                             'same pairs in the same order')
        self.evaluator = runner.build_evaluator(self.evaluator_cfg)
        self.evaluator.dataset_meta = self.dataset.metainfo
        self.headlines = self.evaluator.metrics[0].headlines
        ends = self.dataset.cumulative_sizes
        self.pair_indices: List[range] = [
            range(start, min(end, start + (self.num_samples or end)))
            for start, end in zip([0] + ends[:-1], ends)]
        model = self._model(runner)
        student = getattr(model, 'student', model)
        self.copies = {side: getattr(model, side) for side in COPIES if hasattr(model, side)
                       } or {'student': student}
        self.groups = {}
        groups = self.drift_groups or default_drift_groups(student)
        for group, prefixes in groups.items():
            params = [n for n, _ in student.named_parameters() if _matches(n, prefixes)]
            if params:
                self.groups[group] = params
        self.path = osp.join(runner.work_dir, self.out_file)
        print_log(f'ForgettingProbeHook: probing {len(names)} pairs on '
                  f'{[len(r) for r in self.pair_indices]} images every '
                  f'{self.cycle_interval} cycle(s) ({", ".join(self.copies)}); drift groups '
                  f'{sorted(self.groups)}; records in {self.path}', logger='current')

    @staticmethod
    def _model(runner) -> nn.Module:
        return unwrap_tested_model(runner.model)[0]

    def _probed(self, cycle: int) -> bool:
        return cycle % self.cycle_interval == 0

    # ----- drift -----
    def _flat(self, module: nn.Module, names: List[str]) -> torch.Tensor:
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1).float() for n in names]).clone()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """At a visit's first iteration: keep the shared layers' weights and probe the
        visited pair (its ``before``)."""
        info = runner.train_loop.current_visit
        if info.iter_in_visit != 0:
            return
        self._start = {(side, group): self._flat(module, names)
                       for side, module in self.copies.items()
                       for group, names in self.groups.items()}
        cycle = info.visit // len(self.pair_indices)
        # a probed cycle needs the pair's state before its visit and before the next one
        if self._probed(cycle) or (cycle > 0 and self._probed(cycle - 1)):
            self._write(self._probe_records(runner, info, 'before'))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """At a visit's last iteration: record the drift and probe the visited pair (its
        ``after``)."""
        info = runner.train_loop.current_visit
        if info.iter_in_visit != info.visit_len - 1:
            return
        records = []
        if self._start:  # missing when the run resumed inside this visit
            for (side, group), start in self._start.items():
                end = self._flat(self.copies[side], self.groups[group])
                norm = float(start.norm())
                records.append(dict(self._base(info), kind='drift', task=info.task,
                                    copy=side, group=group,
                                    relative=float((end - start).norm()) / max(norm, 1e-12),
                                    norm=norm))
            self._start = {}
        if self._probed(info.visit // len(self.pair_indices)):
            records += self._probe_records(runner, info, 'after')
        self._write(records)

    def _base(self, info) -> dict:
        return dict(visit=info.visit, cycle=info.visit // len(self.pair_indices),
                    trained=info.pair_name)

    def _probe_records(self, runner, info, when: str) -> List[dict]:
        began = time.time()
        records = [dict(self._base(info), kind='probe', when=when, **record)
                   for record in self.probe(runner, info.pair_idx)]
        self._seconds += time.time() - began
        return records

    # ----- probes -----
    @torch.no_grad()
    def probe(self, runner, pair_idx: int) -> List[dict]:
        """The headline metric of pair ``pair_idx`` on the probe subset, per copy.

        Returns:
            list[dict]: ``pair``, ``copy``, ``metric``, ``value`` (nan when undefined) and
            ``num_samples`` per copy.
        """
        model = self._model(runner)
        indices = self.pair_indices[pair_idx]
        name = self.dataset.pair_names[pair_idx]
        task = name.rsplit('.', 1)[1]
        metric = self.headlines[task]
        # each module's mode, restored as it was (LockReleaseHook(norm_eval=True) may have
        # put frozen BatchNorm layers in eval mode inside the training model)
        modes = [(module, module.training) for module in runner.model.modules()]
        runner.model.eval()
        results = []
        try:
            for side in self.copies:
                # a plain model has one copy, and nothing to switch
                with (model.predicting_on(side) if hasattr(model, 'predicting_on')
                      else nullcontext()):
                    for start in range(0, len(indices), self.batch_size):
                        batch = pseudo_collate([self.dataset[i] for i in
                                                indices[start:start + self.batch_size]])
                        outputs = runner.model.val_step(batch)
                        self.evaluator.process(data_samples=outputs, data_batch=batch)
                metrics = self.evaluator.evaluate(len(indices))
                value = metrics.get(f'{name}/{metric}', float('nan'))
                results.append(dict(pair=name, copy=side, metric=metric,
                                    value=float(value), num_samples=len(indices)))
        finally:
            for module, training in modes:
                module.training = training
        return results

    def _write(self, records: List[dict]) -> None:
        if not records or get_rank() != 0:
            return
        os.makedirs(osp.dirname(self.path) or '.', exist_ok=True)
        with open(self.path, 'a') as f:
            f.writelines(json.dumps(r) + '\n' for r in records)

    def after_train(self, runner) -> None:
        print_log(f'ForgettingProbeHook: {self._seconds:.0f} s spent in probes; records in '
                  f'{self.path}', logger='current')
