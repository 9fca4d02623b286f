"""Shared set-up of the distributed tests: the demo model at toy size, phantom data, runs of
``tools/train.py`` / ``tools/test.py`` in one process or two (torchrun, gloo on the CPU), and a
test-only hook that records what each rank trained on and its final weights.

The subprocesses import this module through the config's ``custom_imports`` (the folder is put
on their ``PYTHONPATH``), which registers :class:`RankRecordHook` and :class:`HangOnSaveHook`.
"""
import glob
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from fxmm.registry import HOOKS

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'foundation_x_demo.py')
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')


@HOOKS.register_module(force=True)
class RankRecordHook(Hook):
    """Test-only: record every training iteration of this rank and, after training, its
    weights.

    Writes ``<work_dir>/rank<r>_iters.json`` (per iteration: the batch's
    ``'<dataset>.<task>#<sample_idx>'`` list, whether the student's backbone was locked, and
    the sum of a teacher parameter after the iteration's hooks), ``rank<r>_init.pth`` (the
    unwrapped model's state dict when training starts) and ``rank<r>_state.pth`` (at its
    end). Runs after the other hooks.
    """
    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        self.iters: List[dict] = []
        torch.save(self._model(runner).state_dict(),
                   osp.join(runner.work_dir, f'rank{runner.rank}_init.pth'))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = self._model(runner)
        self.iters.append(dict(
            samples=[f'{s.dataset}.{s.task}#{s.sample_idx}'
                     for s in data_batch['data_samples']],
            locked=not any(p.requires_grad for p in model.student.backbone.parameters())))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        teacher = next(self._model(runner).teacher.parameters())
        self.iters[-1]['teacher_sum'] = float(teacher.detach().double().sum())

    def after_train(self, runner) -> None:
        with open(osp.join(runner.work_dir, f'rank{runner.rank}_iters.json'), 'w') as f:
            json.dump(self.iters, f)
        torch.save(self._model(runner).state_dict(),
                   osp.join(runner.work_dir, f'rank{runner.rank}_state.pth'))

    @staticmethod
    def _model(runner) -> torch.nn.Module:
        return runner.model.module if is_model_wrapper(runner.model) else runner.model


@HOOKS.register_module(force=True)
class HangOnSaveHook(Hook):
    """Test-only: hang the save of the checkpoint of ``iteration`` inside its atomic write,
    after the data is written to the temporary file and before the rename (``os.fsync``
    blocks), and create ``<work_dir>/hanging`` so that a test can kill the process there.

    Args:
        iteration (int): the checkpoint's iteration (``iter_<iteration>.pth``).
    """

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if checkpoint['meta']['iter'] != self.iteration:
            return
        marker = osp.join(runner.work_dir, 'hanging')

        def hang(fd: int) -> None:
            open(marker, 'w').close()
            while True:
                time.sleep(1)

        os.fsync = hang  # the process is killed while it waits here


def make_phantoms(out_dir: str, num_train: int, num_eval: int, size: int = 64,
                  one_box: bool = False) -> str:
    """Write the four phantom datasets to ``out_dir`` and return it.

    Args:
        out_dir (str): parent folder of the datasets.
        num_train (int): train images per dataset.
        num_eval (int): val and test images per dataset (odd makes uneven shards).
        size (int): image side in pixels. Defaults to 64.
        one_box (bool): keep only train images with boxes, and only their first box, in
            the datasets with boxes. DINO pads its de-noising queries to the largest box
            count of the batch, so per-rank batches match the global batch only when every
            image has the same number of boxes. Defaults to False.
    """
    from data_converters.synthetic import generate_phantom_datasets  # the test process only
    generate_phantom_datasets(out_dir, num_train=num_train, num_val=num_eval,
                              num_test=num_eval, size=size, seed=0)
    if one_box:
        for name in ('phantom_loc', 'phantom_ptx'):
            path = osp.join(out_dir, name, 'annotations', 'train.json')
            with open(path) as f:
                ann = json.load(f)
            ann['data_list'] = [dict(entry, instances=entry['instances'][:1])
                                for entry in ann['data_list'] if entry['instances']]
            with open(path, 'w') as f:
                json.dump(ann, f)
    return out_dir


def _pipeline(size: int, augment: Optional[list]) -> list:
    """The demo's train pipeline ``augment`` at ``size`` px, or its test pipeline."""
    if augment is None:
        return [dict(type='LoadCXRImage'), dict(type='LoadCXRAnnotations'),
                dict(type='CXRResize', scale=(size, size)), dict(type='PackCXRInputs')]
    return [dict(t, scale=(size, size)) if 'scale' in t else dict(t) for t in augment]


def tiny_config(path: str, data_root: str, *, img_size: int = 64, batch_size: int = 4,
                iters_per_visit: int = 2, max_visits: int = 8, lock_fraction: float = 0.5,
                norm: str = 'GN', drop_path_rate: float = 0., exact_dn: bool = True,
                augment: bool = False, pairs: Optional[Sequence[str]] = None,
                extra_hooks: Sequence[dict] = (),
                options: Optional[dict] = None) -> str:
    """The demo config (``configs/foundation_x_demo.py``: a student-teacher model with
    Lock-Release on loc and seg for half of each visit and a per-visit EMA teacher) at toy
    size, written to ``path``.

    Swin 16-128 wide with one block per stage; DINO with one encoder and one decoder layer
    (256 wide: mmdet's DINO decoder needs it) and 10 queries; an 8-wide UperNet; no dropout;
    loaders without workers; gloo; AdamW at lr 1e-3; logging every iteration; one checkpoint
    at the end (keep 2); no validation during training (``val_begin`` beyond the end);
    ``randomness=dict(seed=0, deterministic=True)``; :class:`RankRecordHook` added.

    Args:
        path (str): the config file to write.
        data_root (str): parent folder of the phantom datasets.
        img_size (int): train/test image side. Defaults to 64.
        batch_size (int): samples per batch per process. Defaults to 4.
        iters_per_visit (int): iterations of every visit. Defaults to 2.
        max_visits (int): training length in visits (8 = one cycle). Defaults to 8.
        lock_fraction (float): the locked share of each loc/seg visit. Defaults to 0.5.
        norm (str): ``'GN'`` or ``'BN'`` in the UperNet and the seg heads. With BN each rank
            normalises its own part of the batch (torch's SyncBatchNorm needs CUDA).
        drop_path_rate (float): Swin's stochastic depth. Defaults to 0.
        exact_dn (bool): DINO de-noising queries without noise (noise scales 1e-10, below
            float32 resolution): the noise is drawn per batch, so it cannot match between
            per-rank and global batches, and the L1 loss turns any noise into a +-1
            gradient. Defaults to True.
        augment (bool): train with the demo's random crops, rotations and flips; else with
            the test pipeline. Defaults to False.
        pairs (Sequence[str], optional): train and evaluate on these
            ``'<dataset>.<task>'`` pairs only (and give the model only their datasets).
        extra_hooks (Sequence[dict]): further custom hooks.
        options (dict, optional): further ``key.sub=value`` overrides.
    """
    cfg = Config.fromfile(DEMO_CONFIG)
    norm_cfg = dict(type='GN', num_groups=4) if norm == 'GN' else dict(type=norm)
    dims = [16 * 2**i for i in range(4)]
    demo = cfg.model.model
    student = dict(
        type='FoundationX',
        datasets={name: classes for name, classes in demo.datasets.items()
                  if pairs is None or any(p.startswith(f'{name}.') for p in pairs)},
        data_preprocessor=demo.data_preprocessor,
        backbone=dict(demo.backbone, arch=dict(embed_dims=dims[0], depths=[1, 1, 1, 1],
                                               num_heads=[1, 2, 4, 8]),
                      img_size=img_size, drop_path_rate=drop_path_rate),
        cls_head=dict(demo.cls_head, in_channels=dims[-1]),
        loc_head=dict(
            demo.loc_head, in_channels=dims[1:], num_queries=10,
            encoder=dict(num_layers=1, layer_cfg=dict(
                self_attn_cfg=dict(dropout=0.0),
                ffn_cfg=dict(feedforward_channels=64, ffn_drop=0.0))),
            decoder=dict(demo.loc_head.decoder, num_layers=1, layer_cfg=dict(
                self_attn_cfg=dict(num_heads=8, dropout=0.0), cross_attn_cfg=dict(dropout=0.0),
                ffn_cfg=dict(feedforward_channels=64, ffn_drop=0.0))),
            dn_cfg=dict(label_noise_scale=1e-10 if exact_dn else 0.5,
                        box_noise_scale=1e-10 if exact_dn else 1.0,
                        group_cfg=dict(dynamic=True, num_groups=None, num_dn_queries=4)),
            test_cfg=dict(max_per_img=10)),
        seg_neck=dict(demo.seg_neck, in_channels=dims, channels=8, norm_cfg=norm_cfg),
        seg_head=dict(demo.seg_head, in_channels=8, norm_cfg=norm_cfg))
    cfg.model.model = student

    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataloader = cfg[loader]
        dataloader.update(num_workers=0, persistent_workers=False, batch_size=batch_size)
        dataloader.sampler.batch_size = batch_size
        kept = []
        for pair in dataloader.dataset.pairs:
            dataset = pair.dataset
            name = osp.basename(dataset.data_root.rstrip('/'))
            if pairs is not None and f'{name}.{pair.task}' not in pairs:
                continue
            dataset.data_root = osp.join(data_root, name)
            train_augment = dataset.pipeline if augment and loader == 'train_dataloader' \
                else None
            dataset.pipeline = _pipeline(img_size, train_augment)
            kept.append(pair)
        dataloader.dataset.pairs = kept
    cfg.train_dataloader.sampler.iters_per_visit = iters_per_visit

    cfg.train_cfg = dict(type='CyclicTrainLoop', max_visits=max_visits, val_begin=10**9,
                         val_interval=10**9)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=2, eta_min=0.)]
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.update(interval=max_visits * iters_per_visit, save_best=None,
                                        max_keep_ckpts=2)
    for hook in cfg.custom_hooks:
        if hook.type == 'LockReleaseHook':
            hook.lock_fraction = lock_fraction
    cfg.custom_hooks.extend([dict(type='RankRecordHook'), *extra_hooks])
    cfg.custom_imports = dict(imports=['_helpers'], allow_failed_imports=False)
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.randomness = dict(seed=0, deterministic=True)
    if options:
        cfg.merge_from_dict(options)
    cfg.dump(path)
    return path


def free_port() -> int:
    """A TCP port that is free on this machine now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def command(tool: str, args: Sequence[str], nproc: int = 1) -> List[str]:
    """The command line of ``tool`` in one process, or ``nproc`` under torchrun."""
    if nproc == 1:
        return [sys.executable, tool, *args]
    return [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc),
            '--master_addr', '127.0.0.1', '--master_port', str(free_port()), tool, *args,
            '--launcher', 'pytorch']


def environment() -> Dict[str, str]:
    """The subprocess environment: this folder and the repository importable, the CPU
    only (gloo even where CUDA exists), one thread per process (two processes share two
    cores; fixed thread counts keep float sums reproducible)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT]), CUDA_VISIBLE_DEVICES='',
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)  # checkpoints must load without it
    return env


def start(tool: str, args: Sequence[str], cwd: str, nproc: int = 1) -> subprocess.Popen:
    """Start ``tool`` in the background, its output going to a temporary file (a pipe
    nobody reads would stop it when full); :func:`finish` waits for it."""
    output = tempfile.TemporaryFile('w+')
    proc = subprocess.Popen(command(tool, args, nproc), cwd=cwd, env=environment(),
                            stdout=output, stderr=subprocess.STDOUT, text=True)
    proc.output, proc.what = output, f'{osp.basename(tool)} {list(args)}'
    return proc


def finish(proc: subprocess.Popen, timeout: int = 600) -> str:
    """Wait for a :func:`start`-ed tool; its output, or an assertion error showing its end."""
    proc.wait(timeout=timeout)
    with proc.output:
        proc.output.seek(0)
        out = proc.output.read()
    assert proc.returncode == 0, f'{proc.what} failed:\n{out[-4000:]}'
    return out


def run(tool: str, args: Sequence[str], cwd: str, nproc: int = 1, timeout: int = 600) -> str:
    """Run ``tool`` to completion; its output, or an assertion error showing its end."""
    return finish(start(tool, args, cwd, nproc), timeout)


def run_and_kill(tool: str, args: Sequence[str], cwd: str, ready: Callable[[], bool],
                 what: str, timeout: int = 300) -> None:
    """Start ``tool`` in one process, poll ``ready()`` every 50 ms and SIGKILL the process
    as soon as it is true; ``what`` describes the moment in error messages."""
    with open(osp.join(cwd, 'killed_run.log'), 'w') as output:
        proc = subprocess.Popen(command(tool, args), cwd=cwd, env=environment(),
                                stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                with open(osp.join(cwd, 'killed_run.log')) as f:
                    tail = f.read()[-4000:]
                raise AssertionError(f'{osp.basename(tool)} ended (rc {proc.returncode}) '
                                     f'before {what}:\n{tail}')
            if time.monotonic() > deadline:
                raise AssertionError(f'not at {what} after {timeout} s')
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def log_shows(work_dir: str, text: str) -> bool:
    """Whether the runner's log file in ``work_dir`` holds ``text``."""
    for log in glob.glob(osp.join(work_dir, '*', '*.log')):
        with open(log) as f:
            if text in f.read():
                return True
    return False


def load_state(path: str) -> Dict[str, torch.Tensor]:
    """A state dict saved by :class:`RankRecordHook`, or the ``state_dict`` of a
    checkpoint."""
    state = torch.load(path, map_location='cpu')
    return state.get('state_dict', state)
