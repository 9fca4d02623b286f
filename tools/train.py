"""Train a fxmm model: ``python tools/train.py configs/foundation_x_demo.py``.

The command-line conventions of mmdetection/mmsegmentation's ``tools/train.py``.
"""
import argparse
import logging
import os
import os.path as osp
import re
import zipfile
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from fxmm.engine.optim_wrappers import AMP_VARIANTS
from fxmm.utils import register_all_modules
from fxmm.utils.config_checks import check_config

# the checkpoints CheckpointHook writes in a work dir, with their step number
CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def parse_args():
    parser = argparse.ArgumentParser(description='Train a fxmm model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='enable automatic mixed precision: fp16 with dynamic loss scaling on GPU '
        '(optim_wrapper.dtype=bfloat16 for bf16), bf16 on CPU')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir '
        'when no path is given')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs such as '
        'train_dataloader.batch_size=4 (lists as a=[1,2] without spaces)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    """Load the config and apply the command-line options to it."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper in AMP_VARIANTS:
            cfg.optim_wrapper.type = AMP_VARIANTS[optim_wrapper]
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        elif optim_wrapper in ('AmpOptimWrapper', *AMP_VARIANTS.values()):
            print_log('AMP training is already enabled in your config.', logger='current')
        else:
            raise ValueError(f'--amp needs optim_wrapper.type to be one of '
                             f'{sorted(AMP_VARIANTS)} (or an AMP one already), got '
                             f'{optim_wrapper!r}')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = find_resume_checkpoint(cfg.work_dir)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = check_checkpoint(args.resume)
    return cfg


def check_checkpoint(path: str) -> str:
    """``path`` if it is a complete checkpoint file, else an error naming it.

    torch writes checkpoints as zip archives whose directory sits at the end of the file, so
    a file cut short (a run killed while saving without an atomic backend, a partial copy)
    is recognised without loading it.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    if not zipfile.is_zipfile(path):
        raise ValueError(f'checkpoint {path!r} is truncated or not a torch checkpoint (no zip '
                         f'directory at its end, {osp.getsize(path)} bytes); was the run '
                         'killed while saving it? Resume from an earlier checkpoint')
    return path


def find_resume_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from.

    The one ``<work_dir>/last_checkpoint`` names if it is complete; otherwise (the pointer
    is empty, half-written or names a missing or truncated file, which a kill at the wrong
    moment can leave behind) the newest complete ``iter_*.pth`` / ``epoch_*.pth`` of the work
    dir, with a warning. None when the work dir holds neither: training starts afresh.
    Raises if checkpoints exist but none is complete.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        try:
            return check_checkpoint(named)
        except (FileNotFoundError, ValueError) as err:
            problem = str(err) if named else f'{pointer} is empty'
    steps = {}  # step -> checkpoint path
    for name in os.listdir(work_dir) if osp.isdir(work_dir) else []:
        match = CHECKPOINT_NAME.match(name)
        if match:
            steps[int(match.group(1))] = osp.join(work_dir, name)
    if named is None and not steps:
        return None
    good = [steps[step] for step in sorted(steps) if zipfile.is_zipfile(steps[step])]
    if not good:
        raise RuntimeError(f'--resume: no complete checkpoint in {work_dir!r} (last_checkpoint: '
                           f'{named!r}; checkpoint files: {sorted(steps.values())})')
    if named is not None:
        print_log(f'--resume: {problem}; resuming from {good[-1]} instead', logger='current',
                  level=logging.WARNING)
    return good[-1]


def setup_cpu_distributed(cfg: Config) -> None:
    """Let ``--launcher pytorch`` (torchrun, ``tools/dist_train.sh``) run without CUDA: DDP
    on the CPU over gloo.

    mmengine's launcher calls ``torch.cuda.set_device`` and gives DDP ``device_ids``; both
    fail without a GPU. So when CUDA is unavailable this joins the process group with the
    ``gloo`` backend itself (from torchrun's environment variables; the runner then skips its
    own initialisation) and wraps the model with ``device_ids=None``. Nothing changes when
    CUDA is available or without a launcher.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(f'--launcher {cfg.launcher} needs CUDA; on a machine without GPUs '
                           'use --launcher pytorch (torchrun, tools/dist_train.sh), which runs '
                           'DDP on the CPU with gloo')
    env_cfg = cfg.get('env_cfg', {})
    dist_cfg = dict(env_cfg.get('dist_cfg', {}))
    if dist_cfg.pop('backend', 'gloo') != 'gloo':
        print_log('no CUDA: the distributed backend falls back to gloo', logger='current')
    cfg.env_cfg = dict(env_cfg, dist_cfg=dict(dist_cfg, backend='gloo'))
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo', **dist_cfg)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = dict(wrapper, device_ids=None)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)
    check_config(cfg)
    setup_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    main()
