"""Write the paper-style results table after every evaluation."""
import os.path as osp
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from fxmm.evaluation.results_table import results_table, save_results
from fxmm.registry import HOOKS


@HOOKS.register_module()
class ResultsTableHook(Hook):
    """Save ``results.json`` / ``results.md`` (rows datasets; columns Cls AUC, Loc mAP40,
    Seg Dice) under ``<work_dir>/<val|test>_results/`` and print the table.

    Args:
        out_dir (str, optional): where to write instead of the work dir.
    """

    priority = 'LOW'

    def __init__(self, out_dir: Optional[str] = None):
        self.out_dir = out_dir

    def _write(self, runner, metrics: Optional[Dict[str, float]], mode: str) -> None:
        if not metrics or runner.rank != 0:
            return
        out_dir = osp.join(self.out_dir or runner.work_dir, f'{mode}_results')
        save_results(metrics, out_dir)
        markdown, _ = results_table(metrics)
        print_log(f'{mode} results (also in {out_dir}/results.md):\n{markdown}',
                  logger='current')

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self._write(runner, metrics, 'val')

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self._write(runner, metrics, 'test')
