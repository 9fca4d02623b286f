"""Write the paper-style results table after every evaluation."""
import os.path as osp
from typing import Dict, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn

from fxmm.engine.runner.tested_model import unwrap_tested_model
from fxmm.evaluation.results_table import results_table, save_results
from fxmm.registry import HOOKS


def tested_model_name(model: nn.Module) -> Tuple[str, Optional[str]]:
    """Name the model that gave unprefixed metrics: the copy a ``TeacherStudent`` predicts
    with (its ``predict_on``), else the model's class (``'FoundationX'``).

    Args:
        model (nn.Module): ``runner.model``, possibly wrapped in DDP and/or a TTA wrapper.

    Returns:
        tuple[str, str | None]: The name and the TTA wrapper's class name (None without one).
    """
    model, tta = unwrap_tested_model(model)
    return getattr(model, 'predict_on', type(model).__name__), tta


@HOOKS.register_module()
class ResultsTableHook(Hook):
    """Save ``results.json`` / ``results.md`` (rows datasets; columns Cls AUC, Loc mAP40,
    Seg Dice) under ``<work_dir>/<val|test>_results/`` and print the table.

    The table has one block per tested model, titled by what was tested: a teacher-student
    loop's ``student/``- and ``teacher/``-prefixed metrics give the blocks ``student`` and
    ``teacher``; unprefixed metrics are named by :func:`tested_model_name` (``teacher`` for a
    ``TeacherStudent(predict_on='teacher')`` under ``TestLoop``, ``FoundationX`` for a plain
    model). Under test-time augmentation (``tools/test.py --tta``) every title adds the
    wrapper: ``### teacher (TenCropTTA)``.

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
        model_name, tta = tested_model_name(runner.model)
        save_results(metrics, out_dir, model_name, tta)
        markdown, _ = results_table(metrics, model_name, tta)
        print_log(f'{mode} results (also in {out_dir}/results.md):\n{markdown}',
                  logger='current')

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self._write(runner, metrics, 'val')

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self._write(runner, metrics, 'test')
