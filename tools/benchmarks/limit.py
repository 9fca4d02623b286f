"""The limit: Foundation X's training step beside the bare steps of the models it is made of.

Per task, on the first dataset of that task, three candidates timed interleaved at one
batch size:

- ``bare``: the least a step of that task can cost with the same parts and sizes: forward,
  backward and a plain ``torch.optim.AdamW`` step on inputs already on the device (no data
  preprocessor, optim wrapper, clipping or loss bookkeeping). cls: the config's backbone +
  global average pool + one linear layer, BCE with logits; loc: mmdet's ``DINO`` of the
  dataset (:func:`fxmm.apis.export_configs.dino_config`) ``.loss``; seg: mmseg's UperNet
  of the dataset (:func:`fxmm.apis.export_configs.upernet_config`) ``.loss``;
- ``fx``: ``FoundationX.train_step`` with the config's optim wrapper (the step training
  runs, data preprocessor included);
- ``fx_teacher``: ``TeacherStudent.train_step`` (EMA teacher forward + consistency loss).

With ``amp`` the bare steps run under bf16 ``torch.autocast`` and FX through the AMP
variant of its optim wrapper, as ``tools/train.py --amp``. A ratio is FX's samples/s over
the bare step's (per round: bare time / FX time). Targets (issue #21, bf16, batch 24): the
cls ``fx`` >= 0.9x, ``fx_teacher`` >= 0.65x; loc and seg are reported.

Batch sweep: the cls step of the three at each of ``sweep_batch_sizes``, all interleaved; a
line through step time against batch gives each one's fixed and per-sample time. A step
bound by a fixed per-step cost (launches, host syncs, Python per parameter group) stays
flat as the batch grows; target: FX's growth over the sweep (time at the largest batch /
time at the smallest) >= 0.8x the bare step's growth.

``trace`` adds a :func:`~.trace.step_trace` of the candidates it names in every task.
"""
import os.path as osp
from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from fxmm.apis.export_configs import split_scope
from fxmm.structures.cxr_data_sample import TASKS
from fxmm.apis import build_in_scope
from . import models
from .scaling import linear_fit
from .step import foundation_size
from .timing import autocast, interleaved, memory_kind, paired_ratio, peak_memory, summarize
from .trace import step_trace

#: task -> FX candidate -> the least samples/s it may have over the bare step's (issue #21)
LIMIT_TARGETS = dict(cls=dict(fx=0.9, fx_teacher=0.65))
#: FX's step time growth over the batch sweep, at least this share of the bare step's
GROWTH_TARGET = 0.8
CANDIDATES = ('bare', 'fx', 'fx_teacher')


class BareClassifier(nn.Module):
    """The config's backbone (its last output stage) + global average pool + linear.

    Args:
        backbone_cfg (dict): FoundationX's backbone config (a scoped type, e.g.
            ``mmpretrain.SwinTransformer``).
        in_channels (int): channels of that stage.
        num_classes (int): outputs of the linear layer.
    """

    def __init__(self, backbone_cfg: dict, in_channels: int, num_classes: int):
        super().__init__()
        last = max(backbone_cfg.get('out_indices', (3, )))
        cfg, scope = split_scope(dict(backbone_cfg, init_cfg=None, out_indices=(last, )))
        self.backbone = build_in_scope(cfg, scope)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> logits (B, num_classes)."""
        return self.fc(self.backbone(inputs)[-1].mean(dim=(2, 3)))


def _adamw(model: nn.Module, cfg: Config) -> torch.optim.AdamW:
    """A plain AdamW with the config's learning rate and weight decay."""
    opt = cfg.optim_wrapper.get('optimizer', {})
    return torch.optim.AdamW(model.parameters(), lr=float(opt.get('lr', 1e-4)),
                             weight_decay=float(opt.get('weight_decay', 0.05)))


def _bare_step(loss_fn: Callable[[], torch.Tensor], optimizer, device: str,
               amp: bool) -> Callable[[], None]:

    def step():
        with autocast(device, amp):
            loss = loss_fn()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


class BareClsStep:
    """Bare cls steps of one :class:`BareClassifier` (sized for ``dataset``'s head) and its
    AdamW, on random (B, 3, size, size) inputs of any batch size."""

    def __init__(self, student: nn.Module, student_cfg: dict, cfg: Config, dataset: str,
                 device: str, amp: bool):
        self.num_classes = len(student.class_names[dataset]['cls_classes'])
        model = BareClassifier(student_cfg['backbone'], student.cls_head.in_channels,
                               self.num_classes)
        model.backbone.init_weights()
        self.model = model.to(device).train()
        self.optimizer = _adamw(self.model, cfg)
        self.device, self.amp = device, amp

    def at(self, size: int, batch_size: int) -> Callable[[], None]:
        """The step on a batch of ``batch_size`` inputs (made once, on the device)."""
        gen = torch.Generator().manual_seed(batch_size)
        inputs = torch.rand(batch_size, 3, size, size, generator=gen).to(self.device)
        labels = torch.randint(0, 2, (batch_size, self.num_classes), generator=gen).float()
        labels = labels.to(self.device)
        return _bare_step(
            lambda: F.binary_cross_entropy_with_logits(self.model(inputs), labels),
            self.optimizer, self.device, self.amp)


def bare_reference_step(student: nn.Module, student_cfg: dict, cfg: Config, task: str,
                        dataset: str, batch: dict, device: str,
                        amp: bool) -> Callable[[], None]:
    """The bare step of ``dataset``'s mmdet DINO (loc) or mmseg UperNet (seg) on ``batch``
    (preprocessed once, outside the step)."""
    model = models.build_reference(student, student_cfg, task, dataset, device)
    with torch.no_grad():
        data = model.data_preprocessor(models.reference_batch(batch, task), True)
    inputs, samples = data['inputs'], data['data_samples']
    return _bare_step(lambda: model.parse_losses(model.loss(inputs, samples))[0],
                      _adamw(model, cfg), device, amp)


def _growth(times: Dict[int, dict]) -> float:
    """Median step time at the largest batch over the smallest."""
    sizes = sorted(times)
    return times[sizes[-1]]['median'] / times[sizes[0]]['median']


def limit_benchmark(cfg: Config,
                    device: str = 'cpu',
                    size: Optional[int] = None,
                    batch_size: Optional[int] = None,
                    sweep_batch_sizes: Sequence[int] = (8, 16, 24, 32),
                    repeats: int = 5,
                    warmup: int = 2,
                    amp: bool = True,
                    tasks: Sequence[str] = TASKS,
                    trace: Sequence[str] = (),
                    chrome_trace_dir: Optional[str] = None) -> dict:
    """Time FX against the bare steps; see the module docstring.

    Args:
        cfg (Config): an fxmm config (``model`` a FoundationX or TeacherStudent).
        device (str): ``'cpu'`` or ``'cuda'``.
        size (int, optional): input size; None = the backbone's ``img_size``.
        batch_size (int, optional): None = ``train_dataloader.batch_size``; >= 2 (the
            UperNet's batch norm).
        sweep_batch_sizes (Sequence[int]): the cls sweep (empty: no sweep).
        repeats, warmup (int): timed and untimed interleaved rounds.
        amp (bool): bf16 (the issue's targets are for bf16).
        tasks (Sequence[str]): the tasks to measure (those the model has).
        trace (Sequence[str]): the candidates (of :data:`CANDIDATES`) to profile with
            :func:`~.trace.step_trace` in every task (``traces``).
        chrome_trace_dir (str, optional): write those profiles' Chrome traces there too
            (``limit_<task>_<candidate>.json``).

    Returns:
        dict: ``settings``; ``tasks``: task -> ``dataset``, ``times`` (candidate -> seconds
        summary), ``samples_per_s``, ``peak_memory_mib``, ``ratios`` (FX candidate -> per
        round samples/s over the bare step's, with ``target`` and ``met`` where the issue
        sets one) and ``traces``; ``sweep``: ``times`` (candidate -> batch -> summary),
        ``fits`` (candidate -> :func:`~.scaling.linear_fit` of seconds on batch: ``slope``
        s/sample, ``intercept`` fixed s), ``growth`` (candidate -> time ratio largest /
        smallest batch) and ``growth_vs_bare`` (FX candidate -> its growth over the bare
        step's, ``target``, ``met``).
    """
    size = size or foundation_size(cfg)
    batch_size = batch_size or cfg.train_dataloader.batch_size
    if batch_size < 2 or any(b < 2 for b in sweep_batch_sizes):
        raise ValueError('limit benchmark: batch sizes must be >= 2 (batch norm in training)')
    unknown = set(trace) - set(CANDIDATES)
    if unknown:
        raise ValueError(f'limit benchmark: no candidate {sorted(unknown)} to trace; the '
                         f'candidates are {CANDIDATES}')
    if len(set(sweep_batch_sizes)) == 1:
        raise ValueError('limit benchmark: the sweep needs two batch sizes or none')
    student_cfg = models.student_config(cfg, size)
    fx = models.build_fx(student_cfg, device)
    pair = models.build_fx(student_cfg, device, teacher=True,
                           consistency_weight=models.consistency_weight_of(cfg))
    fx_optim, pair_optim = (models.build_optimizer(m, cfg, amp) for m in (fx, pair))
    out = dict(settings=dict(device=device, size=size, batch_size=batch_size, repeats=repeats,
                             warmup=warmup, amp=amp, sweep_batch_sizes=list(sweep_batch_sizes),
                             memory=memory_kind(device)), tasks={})

    def fx_steps(batch):
        return dict(fx=lambda: fx.train_step(batch, fx_optim),
                    fx_teacher=lambda: pair.train_step(batch, pair_optim))

    for task, dataset, batch in models.task_batches(fx, size, batch_size, tasks):
        if task == 'cls':
            bare_cls = BareClsStep(fx, student_cfg, cfg, dataset, device, amp)
            bare = bare_cls.at(size, batch_size)
        else:
            bare = bare_reference_step(fx, student_cfg, cfg, task, dataset, batch, device, amp)
        fns = dict(bare=bare, **fx_steps(batch))
        times = interleaved(fns, repeats, warmup, device)
        result = dict(dataset=dataset, times={k: summarize(v) for k, v in times.items()})
        result['samples_per_s'] = {k: batch_size / v['median'] for k, v in result['times'].items()}
        result['ratios'] = {}
        for name in ('fx', 'fx_teacher'):
            ratio = paired_ratio(times['bare'], [times[name]])
            bound = LIMIT_TARGETS.get(task, {}).get(name)
            if bound is not None:
                ratio.update(target=bound, met=ratio['median'] >= bound)
            result['ratios'][name] = ratio
        result['peak_memory_mib'] = {k: peak_memory(fn, device) for k, fn in fns.items()}
        result['traces'] = {k: step_trace(fns[k], device, chrome_trace=osp.join(
            chrome_trace_dir, f'limit_{task}_{k}.json') if chrome_trace_dir else None)
                            for k in trace}
        out['tasks'][task] = result
    if sweep_batch_sizes and 'cls' in out['tasks']:
        dataset = out['tasks']['cls']['dataset']
        fns = {}
        for b in sweep_batch_sizes:
            fns[('bare', b)] = bare_cls.at(size, b)
            fns.update({(name, b): fn for name, fn in
                        fx_steps(models.fx_batch(fx, 'cls', dataset, size, b)).items()})
        out['sweep'] = _sweep(fns, sweep_batch_sizes, repeats, warmup, device)
    return out


def _sweep(fns: dict, batch_sizes: Sequence[int], repeats: int, warmup: int,
           device: str) -> dict:
    """Time ``fns`` ((candidate, batch) -> step) interleaved; fits and growths."""
    times = interleaved(fns, repeats, warmup, device)
    by = {name: {b: summarize(times[(name, b)]) for b in batch_sizes} for name in CANDIDATES}
    out = dict(times=by, fits={}, growth={}, growth_vs_bare={})
    for name, t in by.items():
        sizes = sorted(t)
        out['fits'][name] = linear_fit(sizes, [t[b]['median'] for b in sizes])
        out['growth'][name] = _growth(t)
    for name in ('fx', 'fx_teacher'):
        value = out['growth'][name] / out['growth']['bare']
        out['growth_vs_bare'][name] = dict(value=value, target=GROWTH_TARGET,
                                           met=value >= GROWTH_TARGET)
    return out
