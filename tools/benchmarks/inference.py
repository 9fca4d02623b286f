"""Inference: one Foundation X ``predict(heads='all')`` against the three single-task models.

Foundation X returns, from one backbone pass, every dataset's classes, boxes and masks; the
references (:mod:`.models`: mmpretrain classifier, mmdet DINO, mmseg UperNet,
each for one dataset) are run one after the other on the same images. The four are timed
interleaved under ``torch.no_grad`` in eval mode, data preprocessor included
(``model.test_step`` plus FX's ``heads='all'``), at each batch size. ``fx_same_heads`` is
FX with only the references' heads, the like-for-like comparison.
"""
from typing import Optional, Sequence

import torch
from mmengine.config import Config

from fxmm.structures import CLASS_KEYS
from fxmm.structures.cxr_data_sample import TASKS
from . import models
from .timing import (autocast, interleaved, memory_kind, paired_ratio, peak_memory,
                     profile_table, summarize)

INFER_TARGET = 0.6  # FX predict(heads='all') <= 0.6x the sum of the three references


def _predictor(model, batch: dict, device: str, amp: bool, **kwargs):
    """A no-argument callable running ``model.test_step`` (eval, no grad, optional bf16)."""

    def run():
        with torch.no_grad(), autocast(device, amp):
            data = model.data_preprocessor(batch, False)
            return model(**data, mode='predict', **kwargs)

    return run


def _no_grad(fn, *args):
    with torch.no_grad():
        return fn(*args)


def infer_benchmark(cfg: Config,
                    device: str = 'cpu',
                    size: Optional[int] = None,
                    batch_sizes: Sequence[int] = (1, 16),
                    repeats: int = 5,
                    warmup: int = 1,
                    amp: bool = False,
                    profile: bool = True) -> dict:
    """Time FX ``predict(heads='all')`` and the references at each batch size.

    Args:
        cfg (Config): an fxmm config.
        device (str): ``'cpu'`` or ``'cuda'``.
        size (int, optional): input size; None = the backbone's ``img_size``.
        batch_sizes (Sequence[int]): the batch sizes (images per call).
        repeats, warmup (int): timed and untimed interleaved rounds.
        amp (bool): bf16 autocast.
        profile (bool): attach a ``torch.profiler`` table of FX's call at each batch size
            whose target is not met (``profiles``).

    Returns:
        dict: ``settings``, ``heads`` (what one FX call returns: datasets per task) and per
        batch size ``times`` (candidate -> seconds summary), ``images_per_s``,
        ``peak_memory_mib``, ``ratio`` (per-round FX / sum of references, ``target``,
        ``met``) and ``ratio_same_heads`` (the same for ``fx_same_heads``, a FoundationX with
        only the references' three heads: what sharing the backbone saves, like for like),
        ``backbone_s`` (one backbone pass) and ``best_ratio_by_sharing`` (the ratio if the
        only saving were the references' other backbone passes).
    """
    from .step import foundation_size
    size = size or foundation_size(cfg)
    student_cfg = models.student_config(cfg, size)
    fx = models.build_fx(student_cfg, device).eval()
    references = {}
    for task in TASKS:
        dataset = models.task_dataset(fx, task)
        if dataset is not None:
            references[task] = (dataset, models.build_reference(
                fx, student_cfg, task, dataset, device).eval())
    # FX with only the references' heads (one dataset per task): the like-for-like case
    same_heads = {}
    for task, (dataset, _) in references.items():
        key = CLASS_KEYS[task]
        same_heads.setdefault(dataset, {})[key] = fx.class_names[dataset][key]
    fx_same = models.build_fx(models.student_config(cfg, size, datasets=same_heads),
                              device).eval()
    out = dict(settings=dict(device=device, size=size, repeats=repeats, warmup=warmup, amp=amp,
                             memory=memory_kind(device)),
               heads={task: fx.task_datasets[task] for task in TASKS},
               references={task: dataset for task, (dataset, _) in references.items()},
               batch_sizes={}, profiles={})
    for batch_size in batch_sizes:
        # any dataset's metainfo: predict(heads='all') ignores the pair
        batch = models.fx_batch(fx, 'cls', fx.task_datasets['cls'][0] if fx.with_cls
                                else next(iter(fx.class_names)), size, batch_size)
        fns = dict(fx=_predictor(fx, batch, device, amp, heads='all'),
                   fx_same_heads=_predictor(fx_same, batch, device, amp, heads='all'))
        for task, (dataset, model) in references.items():
            ref_batch = models.reference_batch(models.fx_batch(fx, task, dataset, size,
                                                               batch_size), task)
            fns[f'reference_{task}'] = _predictor(model, ref_batch, device, amp)
        with torch.no_grad():
            inputs = fx.data_preprocessor(batch, False)['inputs']
        fns['backbone'] = lambda: _no_grad(fx.extract_feat, inputs)
        times = interleaved(fns, repeats, warmup, device)
        backbone = summarize(times.pop('backbone'))
        fns.pop('backbone')
        refs = [v for k, v in times.items() if k.startswith('reference_')]
        ratio = paired_ratio(times['fx'], refs)
        summaries = {k: summarize(v) for k, v in times.items()}
        ref_sum = sum(v['median'] for k, v in summaries.items() if k.startswith('reference_'))
        out['batch_sizes'][batch_size] = dict(
            times=summaries,
            images_per_s=dict({k: batch_size / v['median'] for k, v in summaries.items()},
                              references_in_sequence=batch_size / ref_sum),
            peak_memory_mib={k: peak_memory(fn, device) for k, fn in fns.items()},
            ratio=dict(ratio, target=INFER_TARGET, met=ratio['median'] <= INFER_TARGET),
            ratio_same_heads=paired_ratio(times['fx_same_heads'], refs),
            # the best FX / sum one shared backbone can give: the sum less all but one of
            # the references' backbone passes (same backbone config, same input)
            backbone_s=backbone['median'],
            best_ratio_by_sharing=(ref_sum - (len(refs) - 1) * backbone['median']) / ref_sum)
        if profile and not out['batch_sizes'][batch_size]['ratio']['met']:
            out['profiles'][f'fx_batch{batch_size}'] = profile_table(fns['fx'], device)
    return out
