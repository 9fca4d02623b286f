"""Train a fxmm model: ``python tools/train.py configs/foundation_x_demo.py``.

The command-line conventions of mmdetection/mmsegmentation's ``tools/train.py``.
"""
import argparse
import os

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from fxmm.engine.config_checks import check_config
from fxmm.engine.optim_wrappers import AMP_VARIANTS
from fxmm.utils import register_all_modules
from fxmm.utils.launch import (check_checkpoint, find_resume_checkpoint, load_config,
                               setup_cpu_distributed,
                               shutdown_distributed)


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
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.work_dir)
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
        found = find_resume_checkpoint(cfg.work_dir)
        if found is None:  # a first run under a requeue script: keep the config's load_from
            cfg.resume = False
            print_log(f'--resume: no checkpoint in {cfg.work_dir} yet; training starts '
                      f'afresh (load_from={cfg.get("load_from")!r})', logger='current')
        else:
            cfg.resume, cfg.load_from = True, found
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = check_checkpoint(args.resume)
    return cfg


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = build_cfg(args)
    check_config(cfg)
    setup_cpu_distributed(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    main()
