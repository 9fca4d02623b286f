"""Data pipeline: DICOM load + transforms against raw pydicom, and the data share of a step.

1. Throughput: the config's training pipeline (``LoadCXRImage``, annotations, augmentation,
   packing) of a ``CXRDataset`` of synthetic DICOM phantoms (``data_converters/synthetic.py``,
   12 bits in 16, written at ``dicom_size``), against ``pydicom.dcmread(f).pixel_array`` on
   the same files, interleaved file by file, with OpenCV's threads as training sets them
   (``env_cfg.mp_cfg.opencv_num_threads``); ``LoadCXRImage`` alone is timed too, to show
   where the time goes.
2. Data share: the config's train dataloader (its ``num_workers``) feeding training steps of
   the config's model; the share is the time spent waiting for ``next(batch)`` over the
   whole iteration.
3. Real-size images (:mod:`.real_size`): the paper config's pipelines on files
   of every real dataset's format and size, from the originals, with reduced decoding and
   from a prepared image store, and the cores per GPU each needs.
"""
import copy
import os.path as osp
import tempfile
import time
from typing import Optional

import cv2
import pydicom
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from data_converters.synthetic import PHANTOM_DATASETS, generate_phantom_datasets
from fxmm.registry import DATASETS, TRANSFORMS
from fxmm.utils.setup_env import register_all_modules
from . import models
from .real_size import real_size_benchmark
from .timing import cprofile_table, interleaved, summarize, synchronize

PIPELINE_TARGET = 0.8  # pipeline throughput >= 0.8x raw pydicom decoding
DATA_SHARE_TARGET = 0.10  # data time < 10% of a training step
_DICOM_PHANTOM = 'phantom_loc'  # a phantom dataset written as DICOM, with boxes


def _train_pairs(cfg: Config) -> list:
    return cfg.train_dataloader.dataset.pairs


def pipeline_benchmark(cfg: Config, work_dir: str, num_files: int = 16, dicom_size: int = 512,
                       repeats: int = 3) -> dict:
    """Time the config's loc (else first) training pipeline against raw pydicom decoding.

    Args:
        cfg (Config): an fxmm config with a ``MultiTaskDataset`` train dataloader.
        work_dir (str): where the DICOM phantoms are written.
        num_files (int): DICOM files.
        dicom_size (int): their height and width in pixels.
        repeats (int): passes over the files (each file is one interleaved round).

    Returns:
        dict: ``files``, ``dicom_size``, ``pipeline`` (the transform types), ``times`` (per
        file, seconds summaries of ``pipeline``, ``load_only``, ``pydicom``),
        ``files_per_s`` and ``ratio`` (pipeline / pydicom throughput, ``target``, ``met``).
    """
    generate_phantom_datasets(work_dir, num_train=num_files, num_val=1, num_test=1,
                              size=dicom_size, datasets=[_DICOM_PHANTOM], overwrite=True)
    pairs = _train_pairs(cfg)
    pair = next((p for p in pairs if p['task'] == 'loc'), pairs[0])
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('fxmm'):
        dataset = DATASETS.build(dict(
            type='CXRDataset', data_root=osp.join(work_dir, _DICOM_PHANTOM),
            ann_file='annotations/train.json', task=pair['task'],
            pipeline=copy.deepcopy(pair['dataset']['pipeline'])))
        load = TRANSFORMS.build(copy.deepcopy(pair['dataset']['pipeline'][0]))
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    times = dict(pipeline=[], load_only=[], pydicom=[])
    # OpenCV's threads as in training (mmengine sets them from env_cfg, 0 by default: its
    # resize would otherwise wait for threads that torch's spinning OpenMP pool keeps busy)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(cfg.get('env_cfg', {}).get('mp_cfg', {}).get('opencv_num_threads', 0))
    try:
        for _ in range(repeats):
            for i, path in enumerate(paths):
                round_times = interleaved(dict(
                    pipeline=lambda: dataset[i],
                    load_only=lambda: load(dict(img_path=path)),
                    pydicom=lambda: pydicom.dcmread(path).pixel_array), repeats=1, warmup=0)
                for name, value in round_times.items():
                    times[name] += value
    finally:
        cv2.setNumThreads(threads)
    ratio = summarize([raw / pipe for raw, pipe in zip(times['pydicom'], times['pipeline'])])
    profiles = {}
    if ratio['median'] < PIPELINE_TARGET:
        profiles['pipeline'] = cprofile_table(lambda: [dataset[i] for i in range(len(paths))])
    return dict(profiles=profiles, files=len(paths), dicom_size=dicom_size,
                pipeline=[t['type'] for t in pair['dataset']['pipeline']],
                times={k: summarize(v) for k, v in times.items()},
                files_per_s={k: 1 / summarize(v)['median'] for k, v in times.items()},
                ratio=dict(ratio, target=PIPELINE_TARGET, met=ratio['median'] >= PIPELINE_TARGET))


def _loader_cfg(cfg: Config, work_dir: str, batch_size: Optional[int]) -> dict:
    """The config's train dataloader, one iteration per visit (every pair in turn), on its
    own data where it exists, else on phantoms written to ``work_dir``."""
    loader = copy.deepcopy(cfg.train_dataloader)
    loader.sampler['iters_per_visit'] = 1
    if batch_size:
        loader['batch_size'] = loader.sampler['batch_size'] = batch_size
    roots = [p['dataset']['data_root'] for p in loader.dataset.pairs]
    if all(osp.isdir(root) for root in roots):
        return loader
    names = {osp.basename(osp.normpath(root)) for root in roots}
    unknown = names - set(PHANTOM_DATASETS)
    if unknown:
        raise FileNotFoundError(f'data share: the data of {sorted(unknown)} is missing and they '
                                'are not phantom datasets; convert them first')
    generate_phantom_datasets(work_dir, num_train=2 * loader['batch_size'], num_val=1,
                              num_test=1, datasets=sorted(names), overwrite=True)
    for pair in loader.dataset.pairs:
        pair['dataset']['data_root'] = osp.join(
            work_dir, osp.basename(osp.normpath(pair['dataset']['data_root'])))
    return loader


def data_share_benchmark(cfg: Config, work_dir: str, device: str = 'cpu', iters: int = 8,
                         warmup: int = 2, batch_size: Optional[int] = None) -> dict:
    """Train the config's model for ``warmup + iters`` iterations from its train dataloader
    and measure the time spent waiting for data.

    Returns:
        dict: ``num_workers``, ``batch_size``, ``iters``, ``data_time`` / ``step_time``
        (seconds summaries per iteration), ``share`` (sum of data time / sum of iteration
        time, ``target``, ``met``), ``pairs`` (the pairs seen).
    """
    from .step import foundation_size
    loader_cfg = _loader_cfg(cfg, work_dir, batch_size)
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('fxmm'):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    student_cfg = models.student_config(cfg, foundation_size(cfg))
    model = models.build_fx(student_cfg, device,
                            teacher=cfg.model.get('type') == 'TeacherStudent',
                            consistency_weight=models.consistency_weight_of(cfg))
    optim_wrapper = models.build_optimizer(model, cfg)
    data_times, step_times, pairs = [], [], []
    batches = iter(loader)
    for i in range(warmup + iters):
        start = time.perf_counter()
        batch = next(batches)
        got = time.perf_counter()
        model.train_step(batch, optim_wrapper)
        synchronize(device)
        if i >= warmup:
            data_times.append(got - start)
            step_times.append(time.perf_counter() - got)
            sample = batch['data_samples'][0]
            pairs.append(f"{sample.metainfo['dataset']}.{sample.metainfo['task']}")
    share = sum(data_times) / (sum(data_times) + sum(step_times))
    return dict(num_workers=loader_cfg.get('num_workers', 0), batch_size=loader_cfg['batch_size'],
                iters=iters, pairs=pairs, data_time=summarize(data_times),
                step_time=summarize(step_times),
                share=dict(value=share, target=DATA_SHARE_TARGET, met=share < DATA_SHARE_TARGET))


def data_benchmark(cfg: Config, device: str = 'cpu', num_files: int = 16,
                   dicom_size: int = 512, repeats: int = 3, iters: int = 8,
                   batch_size: Optional[int] = None,
                   real_size: Optional[dict] = None) -> dict:
    """The three parts, on files written to a temporary folder (removed afterwards). The
    data share is ``dict(skipped=<why>)`` for a config whose data is neither here nor
    phantoms; ``real_size`` holds the arguments of
    :func:`.real_size.real_size_benchmark` (None: that part is left out)."""
    with tempfile.TemporaryDirectory(prefix='fxmm_benchmark_') as tmp:
        pipeline = pipeline_benchmark(cfg, osp.join(tmp, 'dicom'), num_files, dicom_size,
                                      repeats)
        try:
            share = data_share_benchmark(cfg, osp.join(tmp, 'phantoms'), device, iters,
                                         batch_size=batch_size)
        except FileNotFoundError as err:  # a real-data config without its data here
            share = dict(skipped=str(err))
        results = dict(profiles=pipeline.pop('profiles'), pipeline=pipeline, data_share=share)
        if real_size is not None:
            results['real_size'] = real_size_benchmark(osp.join(tmp, 'real'),
                                                       repeats=min(repeats, 2), **real_size)
        return results
