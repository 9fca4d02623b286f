"""The data pipeline on real-size images: from the originals, with reduced decoding and from a
prepared image store, against the step rate of a GPU.

On the files of :mod:`.real_inputs` (one kind per format and size of the real
datasets), the paper config's cls / loc / seg training pipelines (224 px) run in three
variants, timed side by side, file by file, with the same per-sample seed:

- ``original``: the config's pipeline on the original files;
- ``reduced``: the same with ``LoadCXRImage(min_decoded_side=max_side)`` (formats whose
  decoders reduce: JPEG, JPEG baseline and JPEG 2000 DICOM, at least twice ``max_side``);
- ``store``: the same pipeline on the store :mod:`fxmm.datasets.prepare_store` prepared from
  the files (long side ``max_side``), through the datasets' ``data_prefix``.

One process on one core (OpenCV's threads as training sets them, one torch thread as in a
DataLoader worker), so images/s is per core
and the cores one GPU needs at ``gpu_samples_per_s`` are ``rate * seconds per image``. Also
measured: how much the outputs differ from the original pipeline's (image, boxes, masks);
the store formats that were candidates (PNG, lossless WebP, raw) on the prepared images;
and the share of a simulated GPU step's time spent waiting for the config's dataloader
(its workers and batch), the GPU being a consumer that sleeps ``batch / rate`` per batch.
"""
import contextlib
import copy
import json
import logging
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader, Dataset

from fxmm.datasets.image_io import read_cxr_image, reduction_for
from fxmm.datasets.image_store import RECORDS
from fxmm.datasets.prepare_store import prepare_images
from fxmm.datasets.sample_rng import sample_rng
from fxmm.registry import DATASETS
from fxmm.utils.setup_env import register_all_modules
from .real_inputs import REAL_INPUTS, file_kib, write_real_inputs
from .timing import interleaved, summarize

#: The H100's rate on the paper config's cls step: fp32, with the teacher, batch 24
#: (docs/reliability.md, measured before the optimiser's param groups were merged).
GPU_SAMPLES_PER_S = 101.
PAPER_CONFIG = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs',
                        'foundation_x.py')
TASKS = ('cls', 'loc', 'seg')
VARIANTS = ('original', 'reduced', 'store')
REDUCING_KINDS = ('jpeg', 'dicom_jpeg', 'dicom_j2k')  # whose decoders reduce
STORE_SPEEDUP_TARGET = 10.  # cls from the store >= 10x the original pipeline ...
SPEEDUP_INPUTS = ('jpeg_3056', 'png16_2048')  # ... on these (issue #18)
CORES_TARGET = 1.  # cores per GPU from the store, every input and task
SHARE_TARGET = 0.10  # data share of a step at the GPU rate, from the store
SHARE_INPUTS = ('jpeg_3056', 'png16_2048')


@contextlib.contextmanager
def _quiet():
    """Hold back the info lines of the datasets built here (each logs its summary)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def config_pipelines(cfg: Config) -> Dict[str, list]:
    """The training pipeline of the first pair of each task, and the test pipeline."""
    pipelines = {}
    for pair in cfg.train_dataloader.dataset.pairs:
        pipelines.setdefault(pair['task'], pair['dataset']['pipeline'])
    pipelines['test'] = cfg.test_dataloader.dataset.pairs[0]['dataset']['pipeline']
    return {k: copy.deepcopy(v) for k, v in pipelines.items()}


def with_reduced_decoding(pipeline: list, side: int) -> list:
    """``pipeline`` with ``min_decoded_side=side`` on its ``LoadCXRImage``."""
    return [dict(t, min_decoded_side=side) if t['type'] == 'LoadCXRImage' else t
            for t in copy.deepcopy(pipeline)]


# what the cls and loc runs leave out of an entry (a cls-only or loc-only dataset's)
_WITHOUT = dict(cls=dict(instances=[], seg={}, seg_classes=[]), loc=dict(seg={}, seg_classes=[]))


class _Cases:
    """The results dicts of one input's images in each variant, and the pipelines."""

    def __init__(self, root: str, ann_file: str, store_prefix: str, pipelines: dict,
                 side: int, reduces: bool) -> None:
        def infos(prefix):
            dataset = DATASETS.build(dict(type='CXRDataset', data_root=root, ann_file=ann_file,
                                          data_prefix=dict(img_path=prefix)))
            return [dataset.get_data_info(i) for i in range(len(dataset))]

        with _quiet():
            original, store = infos(''), infos(store_prefix)
        self.variants = ('original', 'reduced', 'store') if reduces else ('original', 'store')
        self.infos = dict(original=original, reduced=original, store=store)
        self.pipelines = {
            variant: {task: Compose(with_reduced_decoding(p, side) if variant == 'reduced'
                                    else copy.deepcopy(p)) for task, p in pipelines.items()}
            for variant in self.variants}

    def run(self, variant: str, task: str, i: int, seed) -> dict:
        """The pipeline's output for image ``i`` with the sample seed ``seed``. A cls run
        sees the image's label only, a loc run its boxes too (as in a cls-only or loc-only
        dataset), a seg or test run also its masks."""
        info = copy.deepcopy(self.infos[variant][i])
        if task in _WITHOUT:
            info.update(_WITHOUT[task])
        with sample_rng(seed):
            return self.pipelines[variant][task](info)


def _difference(a: dict, b: dict) -> dict:
    """How far output ``b`` is from ``a``: image, boxes (in input pixels), masks."""
    diff = np.abs(a['inputs'].numpy() - b['inputs'].numpy())
    out = dict(image_max=float(diff.max()), image_mean=float(diff.mean()))
    sa, sb = a['data_samples'], b['data_samples']
    if 'gt_instances' in sa:
        boxes_a, boxes_b = sa.gt_instances.bboxes.numpy(), sb.gt_instances.bboxes.numpy()
        out['boxes_max_px'] = (float(np.abs(boxes_a - boxes_b).max(initial=0.))
                               if boxes_a.shape == boxes_b.shape else float('inf'))
    if 'gt_seg_masks' in sa and len(sa.gt_seg_masks.data):  # a dataset with seg classes
        masks_a, masks_b = sa.gt_seg_masks.data.numpy(), sb.gt_seg_masks.data.numpy()
        out['mask_pixels_differing'] = (float((masks_a != masks_b).mean())
                                        if masks_a.shape == masks_b.shape else 1.)
        out['mask_shape'] = list(masks_b.shape[1:])
    return out


def _worst(diffs: List[dict]) -> dict:
    return {k: (max(d[k] for d in diffs) if k != 'mask_shape' else diffs[0][k])
            for k in diffs[0]}


def _store_records(store: str) -> List[dict]:
    with open(osp.join(store, RECORDS), encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def _format_candidates(stored: np.ndarray, path: str, repeats: int) -> dict:
    """Decode time (ms, median) and size (KiB) of a prepared image as PNG, lossless WebP
    (8-bit only) and raw, the store's format (its read from the store)."""
    candidates = {'raw (store)': (lambda: read_cxr_image(path, keep_stored=True),
                                  stored.nbytes)}
    ok, png = cv2.imencode('.png', stored, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    candidates['png'] = (lambda: cv2.imdecode(png, cv2.IMREAD_UNCHANGED), png.nbytes)
    if stored.dtype == np.uint8:
        ok, webp = cv2.imencode('.webp', stored, [cv2.IMWRITE_WEBP_QUALITY, 101])
        candidates['webp lossless'] = (
            lambda: cv2.cvtColor(cv2.imdecode(webp, cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2GRAY),
            webp.nbytes)
    times = interleaved({k: fn for k, (fn, _) in candidates.items()}, repeats=repeats,
                        warmup=1)
    return {k: dict(ms=1e3 * summarize(times[k])['median'], kib=size / 1024)
            for k, (_, size) in candidates.items()}


class _Repeated(Dataset):
    """``n`` samples cycling over the images of a :class:`_Cases` variant (cls pipeline)."""

    def __init__(self, cases: _Cases, variant: str, n: int) -> None:
        self.cases, self.variant, self.n = cases, variant, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.cases.run(self.variant, 'cls', i % len(self.cases.infos[self.variant]),
                              (0, i))


def gpu_rate_share(cases: _Cases, variant: str, gpu_rate: float, batch_size: int,
                   num_workers: int, batches: int) -> dict:
    """The share of time a GPU consuming ``gpu_rate`` samples/s waits for the dataloader.

    The loader (``num_workers`` processes, ``batch_size``, prefetch 2 per worker) feeds a
    consumer that sleeps ``batch_size / gpu_rate`` per batch. The first
    ``2 * num_workers`` batches, which the workers prepare before the first step, are not
    counted; the next ``batches`` are.

    Returns:
        dict: ``share`` (waiting / (waiting + steps)), ``loader_samples_per_s`` (samples over
        the counted waiting + step time), ``batches``, ``num_workers``, ``batch_size``.
    """
    skip = 2 * max(num_workers, 1)
    loader = DataLoader(_Repeated(cases, variant, (skip + batches) * batch_size),
                        batch_size=batch_size, num_workers=num_workers,
                        collate_fn=pseudo_collate)
    step = batch_size / gpu_rate
    waits = []
    batches_iter = iter(loader)
    for i in range(skip + batches):
        start = time.perf_counter()
        next(batches_iter)
        if i >= skip:
            waits.append(time.perf_counter() - start)
        time.sleep(step)
    total = sum(waits) + step * len(waits)
    return dict(share=sum(waits) / total, loader_samples_per_s=len(waits) * batch_size / total,
                batches=batches, num_workers=num_workers, batch_size=batch_size)


def real_size_benchmark(work_dir: str, pipelines_cfg: Optional[Config] = None,
                        num_files: int = 3, repeats: int = 2,
                        gpu_samples_per_s: float = GPU_SAMPLES_PER_S, max_side: int = 512,
                        share_batches: int = 8, inputs: Sequence = REAL_INPUTS,
                        share_inputs: Sequence[str] = SHARE_INPUTS) -> dict:
    """Write the real-size files, prepare their store and measure every input's pipelines.

    Args:
        work_dir (str): where the files and the store are written.
        pipelines_cfg (Config, optional): the config whose pipelines, workers and batch are
            used; None: ``configs/foundation_x.py`` (224 px).
        num_files (int): files per input.
        repeats (int): timed rounds over the files.
        gpu_samples_per_s (float): the GPU's training rate the cores are sized for.
        max_side (int): long side of the store's images and of the reduced decoding.
        share_batches (int): counted batches of the data-share measurement; 0 skips it.
        inputs (Sequence[RealInput]): the kinds of files.
        share_inputs (Sequence[str]): the inputs whose data share is measured from the store
            (the first also from the originals).

    Returns:
        dict: ``settings``, ``inputs`` (per input: ``label``, ``datasets``, ``file_kib``,
        ``stored_kib``, ``prepare_ms``, ``tasks`` (per task: ``ms``, ``images_per_s``,
        ``cores_per_gpu`` per variant, ``speedup`` per variant against the original),
        ``difference`` (per variant and pipeline: the worst over the files)), ``formats``,
        ``share`` and ``targets``.
    """
    cfg = pipelines_cfg or Config.fromfile(PAPER_CONFIG)
    register_all_modules(init_default_scope=False)
    root = osp.join(work_dir, 'images')
    ann_files = write_real_inputs(root, num_files, inputs)
    store = osp.join(root, 'prepared', str(max_side))
    with _quiet():
        prepared = prepare_images(list(ann_files.values()), store=store, max_side=max_side)
    records = _store_records(store)
    pipelines = config_pipelines(cfg)
    threads = cv2.getNumThreads(), torch.get_num_threads()
    cv2.setNumThreads(cfg.get('env_cfg', {}).get('mp_cfg', {}).get('opencv_num_threads', 0))
    torch.set_num_threads(1)  # as torch sets it in every DataLoader worker
    results, formats = {}, {}
    try:
        with DefaultScope.overwrite_default_scope('fxmm'):
            cases = {spec.name: _Cases(root, ann_files[spec.name], f'prepared/{max_side}/',
                                       pipelines, max_side, _reduces(spec, max_side))
                     for spec in inputs}
            times, outputs = _time_cases(cases, repeats, num_files)
            for spec in inputs:
                case = cases[spec.name]
                results[spec.name] = _input_result(spec, case, times[spec.name],
                                                   outputs[spec.name], records, root,
                                                   ann_files[spec.name], gpu_samples_per_s)
                stored_path = case.infos['store'][0]['img_path']
                formats[spec.name] = _format_candidates(
                    read_cxr_image(stored_path, keep_stored=True)[0], stored_path,
                    max(repeats, 3))
            share = {}
            batch = cfg.train_dataloader['batch_size']
            workers = cfg.train_dataloader.get('num_workers', 0)
            measured = [n for n in share_inputs if n in cases] if share_batches else []
            for name in measured:  # the originals too for the first, to compare
                share[name] = {v: gpu_rate_share(cases[name], v, gpu_samples_per_s, batch,
                                                 workers, share_batches)
                               for v in (('store', 'original') if name == measured[0]
                                         else ('store', ))}
    finally:
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
    return dict(settings=dict(gpu_samples_per_s=gpu_samples_per_s, max_side=max_side,
                              files=num_files, repeats=repeats, tasks=list(TASKS),
                              cpu_count=os.cpu_count(), img_size=_crop_size(pipelines['cls']),
                              prepare_seconds=prepared['seconds'],
                              store_bytes=prepared['store_bytes']),
                inputs=results, formats=formats, share=share,
                targets=_targets(results, share))


def _reduces(spec, side: int) -> bool:
    """Whether ``LoadCXRImage(min_decoded_side=side)`` decodes the input reduced."""
    return spec.kind in REDUCING_KINDS and reduction_for((spec.height, spec.width), side) > 1


def _crop_size(pipeline: list) -> Optional[int]:
    for t in pipeline:
        if 'scale' in t:
            scale = t['scale']
            return scale if isinstance(scale, int) else scale[0]
    return None


#: a timed sample of a fast pipeline repeats it to last at least this long (seconds)
MIN_SAMPLE_S = 0.02


def _time_cases(cases: Dict[str, _Cases], repeats: int, num_files: int):
    """Time every input's variants side by side: round by round, file by file, the
    variants in an order that rotates from one file to the next, each with the sample seed
    ``(round, file)``. A pipeline faster than :data:`MIN_SAMPLE_S` (from a warm-up call)
    runs several times per sample.

    Returns:
        tuple[dict, dict]: ``times[input][task][variant]``: seconds per image, one per
        (round, file); ``outputs[input][task][variant]``: the outputs of round 0, per file.
    """
    times, outputs, turn = {}, {}, 0
    calls = {}
    for name, case in cases.items():  # warm-up: lazy imports, first-call costs, call counts
        for task in TASKS:
            for variant in case.variants:
                start = time.perf_counter()
                case.run(variant, task, 0, (0, 0))
                took = time.perf_counter() - start
                calls[name, task, variant] = max(1, min(10, round(MIN_SAMPLE_S / took)))
        times[name] = {t: {v: [] for v in case.variants} for t in TASKS}
        outputs[name] = {t: {v: [] for v in case.variants} for t in TASKS}
    for r in range(repeats):
        for name, case in cases.items():
            for task in TASKS:
                for i in range(num_files):
                    turn += 1
                    order = case.variants[turn % len(case.variants):] + case.variants[
                        :turn % len(case.variants)]
                    for variant in order:
                        n = calls[name, task, variant]
                        start = time.perf_counter()
                        for _ in range(n):
                            out = case.run(variant, task, i, (r, i))
                        times[name][task][variant].append((time.perf_counter() - start) / n)
                        if r == 0:
                            outputs[name][task][variant].append(out)
    return times, outputs


def _input_result(spec, case: _Cases, times: dict, outputs: dict, records: List[dict],
                  root: str, ann_file: str, rate: float) -> dict:
    tasks = {}
    for task, by_variant in times.items():
        medians = {v: summarize(ts)['median'] for v, ts in by_variant.items()}
        tasks[task] = dict(
            ms={v: 1e3 * m for v, m in medians.items()},
            images_per_s={v: 1 / m for v, m in medians.items()},
            cores_per_gpu={v: rate * m for v, m in medians.items()},
            speedup={v: summarize([o / t for o, t in zip(by_variant['original'], ts)])
                     for v, ts in by_variant.items() if v != 'original'})
    difference = {}
    files = range(len(outputs['cls']['original']))
    tests = {v: [case.run(v, 'test', i, (0, i)) for i in files] for v in case.variants}
    for variant in case.variants[1:]:
        difference[variant] = {
            task: _worst([_difference(a, b) for a, b in zip(outputs[task]['original'],
                                                             outputs[task][variant])])
            for task in TASKS}
        difference[variant]['test'] = _worst(
            [_difference(a, b) for a, b in zip(tests['original'], tests[variant])])
    mine = [r for r in records if r['key'].split('/')[0] == spec.name]
    kib, _ = file_kib(root, ann_file)
    return dict(label=spec.label, datasets=spec.datasets, file_kib=kib,
                stored_kib=float(np.mean([r['shape'][0] * r['shape'][1] * r['dtype']
                                          for r in mine])) / 1024,
                stored_shape=mine[0]['shape'],
                prepare_ms=1e3 * float(np.median([r['seconds'] for r in mine])),
                tasks=tasks, difference=difference)


def _targets(results: dict, share: dict) -> dict:
    speedups = {n: results[n]['tasks']['cls']['speedup']['store']['median']
                for n in SPEEDUP_INPUTS if n in results}
    slowest = min(((r['tasks']['cls']['speedup']['store']['median'], n)
                   for n, r in results.items()), default=(float('nan'), None))
    cores = max(((c, f'{n}.{t}') for n, r in results.items() for t, res in r['tasks'].items()
                 for c in [res['cores_per_gpu']['store']]), default=(float('nan'), None))
    shares = [s['store']['share'] for s in share.values()]
    return dict(
        store_speedup=dict(values=speedups, target=STORE_SPEEDUP_TARGET,
                           met=bool(speedups) and min(speedups.values()) >= STORE_SPEEDUP_TARGET),
        no_slower=dict(value=slowest[0], input=slowest[1], target=1.,
                       met=bool(slowest[0] >= 1.)),
        cores_per_gpu=dict(value=cores[0], where=cores[1], target=CORES_TARGET,
                           met=bool(cores[0] <= CORES_TARGET)),
        share=dict(value=max(shares) if shares else None, target=SHARE_TARGET,
                   met=bool(shares) and max(shares) < SHARE_TARGET))
