"""Evaluate a fxmm checkpoint and write the paper-style results table.

``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]`` prints per (dataset, task) metrics
and saves ``results.json`` / ``results.md`` (rows datasets, columns Cls AUC / Loc mAP40 / Seg
Dice) in ``<work_dir>/test_results/``. The command-line conventions of mmdetection's
``tools/test.py``.

``--out preds.pkl`` dumps the per-sample predictions, as mmdetection's ``--out`` does. A
``TeacherStudentTestLoop`` tests two models, so it writes one such file per copy:
``preds_student.pkl`` and ``preds_teacher.pkl`` (no ``preds.pkl``).
"""
import argparse
import os

from mmengine.config import ConfigDict, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from fxmm.engine.config_checks import check_config
from fxmm.utils import register_all_modules
from fxmm.utils.launch import (check_checkpoint, load_config, setup_cpu_distributed,
                               shutdown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a fxmm model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the results table and logs '
        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--out', help='dump the raw predictions to this pickle file; a TeacherStudentTestLoop '
        '(both copies tested) writes <stem>_student.pkl and <stem>_teacher.pkl instead')
    parser.add_argument(
        '--show-dir', help='save images with predictions drawn (boxes, masks, top classes) '
        'to <work_dir>/<timestamp>/SHOW_DIR/[<student|teacher>/]<dataset>.<task>/')
    parser.add_argument(
        '--tta', action='store_true',
        help="test-time augmentation: wrap the model in the config's `tta_model` "
        "(configs/ark.py: the teacher with 10 crops)")
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.launcher, args.cfg_options, args.work_dir)
    cfg.load_from = check_checkpoint(args.checkpoint)
    cfg.resume = False

    if args.tta:
        if 'tta_model' not in cfg:
            raise ValueError(f'--tta: the config {args.config!r} has no `tta_model`')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    if args.show_dir is not None:
        cfg.default_hooks.setdefault('visualization', dict(type='CXRVisualizationHook'))
        cfg.default_hooks.visualization.update(draw=True, test_out_dir=args.show_dir)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl/.pickle file, got {args.out!r}')
        cfg.test_evaluator = [cfg.test_evaluator] if isinstance(
            cfg.test_evaluator, dict) else list(cfg.test_evaluator)
        cfg.test_evaluator.append(dict(type='MultiTaskDumpResults', out_file_path=args.out))

    setup_cpu_distributed(cfg)
    check_config(cfg)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    runner.test()
    shutdown_distributed()


if __name__ == '__main__':
    main()
