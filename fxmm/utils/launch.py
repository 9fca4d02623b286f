"""What tools/train.py and tools/test.py share: config loading, resume checks, CPU DDP."""
import logging
import os
import os.path as osp
import re
import zipfile
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log

# the checkpoints CheckpointHook writes in a work dir, with their step number
CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def load_config(config: str, launcher: str = 'none', cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read ``config`` and apply the command-line options common to train and test.

    Args:
        config (str): config file path; a clear FileNotFoundError if it does not exist.
        launcher (str): ``--launcher``.
        cfg_options (dict, optional): ``--cfg-options`` key=value overrides.
        work_dir (str, optional): ``--work-dir``; else the config's, else
            ``./work_dirs/<config name>``.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])
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
        raise ValueError(f'checkpoint {path!r} is not a complete zip-format torch checkpoint '
                         f'(no zip directory at its end, {osp.getsize(path)} bytes): truncated '
                         '(was the run killed while saving it? resume from an earlier '
                         'checkpoint), or in the legacy format of torch < 1.6 (load it and '
                         'torch.save it again)')
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


def shutdown_distributed() -> None:
    """Leave the process group cleanly at the end of a tool run.

    mmengine never destroys the group; a gloo process that exits with it alive can abort in
    its destructor ("terminate called without an active exception") and fail the launch.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
