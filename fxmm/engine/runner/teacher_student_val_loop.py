"""Validate both copies of a :class:`~fxmm.models.TeacherStudent` and say which is better."""
import math
import os.path as osp
from contextlib import contextmanager
from typing import Dict, Iterator, List, Union

from mmengine.evaluator import DumpResults, Evaluator
from mmengine.logging import print_log
from mmengine.runner import TestLoop, ValLoop
from torch.utils.data import DataLoader

from fxmm.models.teacher_student import COPIES
from fxmm.registry import LOOPS
from .tested_model import unwrap_tested_model

RULES = ('greater', 'less')


def copy_out_file(path: str, side: str) -> str:
    """Where one copy's predictions go when both are dumped: ``preds.pkl`` ->
    ``preds_student.pkl`` / ``preds_teacher.pkl``."""
    stem, suffix = osp.splitext(path)
    return f'{stem}_{side}{suffix}'


@contextmanager
def dump_files_of_copy(evaluator: Evaluator, side: str) -> Iterator[None]:
    """Point every :class:`~mmengine.evaluator.DumpResults` metric of ``evaluator``
    (``tools/test.py --out``) at :func:`copy_out_file` while ``side`` is evaluated, so that
    the second copy does not overwrite the first one's predictions."""
    dumps = [metric for metric in evaluator.metrics if isinstance(metric, DumpResults)]
    paths = [metric.out_file_path for metric in dumps]
    for metric, path in zip(dumps, paths):
        metric.out_file_path = copy_out_file(path, side)
    try:
        yield
    finally:
        for metric, path in zip(dumps, paths):
            metric.out_file_path = path


def evaluate_both_copies(loop, stage: str) -> dict:
    """Run ``loop`` (a val or test loop) once per copy of a TeacherStudent model.

    A ``DumpResults`` metric of the evaluator writes one file per copy (see
    :func:`copy_out_file`).

    Args:
        loop (ValLoop | TestLoop): the loop, with ``dataloader``, ``evaluator``,
            ``run_iter`` and a ``better(metrics)`` method.
        stage (str): ``'val'`` or ``'test'``: which hooks to call.

    Returns:
        dict: ``'student/<key>'`` and ``'teacher/<key>'`` metrics.
    """
    runner = loop.runner
    runner.call_hook(f'before_{stage}')
    runner.call_hook(f'before_{stage}_epoch')
    runner.model.eval()
    model, _ = unwrap_tested_model(runner.model)  # the TeacherStudent under DDP / TTA
    if not hasattr(model, 'predicting_on'):
        raise TypeError(f'{type(loop).__name__} needs a model with a `predict_on` switch '
                        f'(TeacherStudent), got {type(model).__name__}')
    metrics = {}
    for side in COPIES:
        with model.predicting_on(side):
            for idx, data_batch in enumerate(loop.dataloader):
                loop.run_iter(idx, data_batch)
            with dump_files_of_copy(loop.evaluator, side):
                side_metrics = loop.evaluator.evaluate(len(loop.dataloader.dataset))
        metrics.update({f'{side}/{key}': value for key, value in side_metrics.items()})
    loop._log_better(metrics)
    runner.call_hook(f'after_{stage}_epoch', metrics=metrics)
    runner.call_hook(f'after_{stage}')
    return metrics


class CopyComparison:
    """Which copy of a TeacherStudent is better on ``compare_key`` under ``rule``: the part
    :class:`TeacherStudentValLoop` and :class:`TeacherStudentTestLoop` share."""

    def _set_comparison(self, compare_key: str, rule: str) -> None:
        if rule not in RULES:
            raise ValueError(f'{type(self).__name__}: rule must be one of {RULES}, got '
                             f'{rule!r}')
        self.compare_key = compare_key
        self.rule = rule

    def better(self, metrics: Dict[str, float]) -> Union[str, None]:
        """The better copy on ``compare_key``: ``'student'``, ``'teacher'`` (ties go to the
        teacher, the smoother model), or None when a value is missing or nan."""
        values = [metrics.get(f'{side}/{self.compare_key}') for side in COPIES]
        if any(v is None or math.isnan(float(v)) for v in values):
            return None
        student, teacher = (float(v) for v in values)
        student_better = student > teacher if self.rule == 'greater' else student < teacher
        return 'student' if student_better else 'teacher'

    def _log_better(self, metrics: Dict[str, float]) -> None:
        key = self.compare_key
        side = self.better(metrics)
        if side is None:
            print_log(f'{type(self).__name__}: cannot compare the copies on {key!r} (missing '
                      f'or nan); metrics: {sorted(metrics)}', logger='current',
                      level='WARNING')
            return
        values = ', '.join(f'{s}/{key} = {float(metrics[f"{s}/{key}"]):.4f}' for s in COPIES)
        print_log(f'{values}: the {side} is better', logger='current')


@LOOPS.register_module()
class TeacherStudentValLoop(CopyComparison, ValLoop):
    """mmengine's :class:`ValLoop` run twice, on the student and on the teacher.

    The model's ``predict_on`` is switched to ``'student'``, then ``'teacher'`` (and restored
    afterwards); every metric comes out twice, as ``'student/<key>'`` and
    ``'teacher/<key>'``, so that ``CheckpointHook(save_best=['student/score',
    'teacher/score'], rule='greater')`` keeps the best checkpoint of each. The loop logs
    which copy is better on ``compare_key`` (Foundation X reports the better one).

    As in mmdet's ``TeacherStudentValLoop``, the ``before_val_iter``/``after_val_iter`` hooks
    run once per copy and batch.

    Example:
        >>> val_cfg = dict(type='TeacherStudentValLoop')
        >>> default_hooks = dict(checkpoint=dict(
        ...     type='CheckpointHook', by_epoch=False, interval=1000,
        ...     save_best=['student/score', 'teacher/score'], rule='greater'))

    Args:
        runner (Runner): the runner.
        dataloader (DataLoader | dict): the validation dataloader.
        evaluator (Evaluator | dict | list): the evaluator.
        fp16 (bool): validate with autocast. Defaults to False.
        compare_key (str): the metric (unprefixed) that decides which copy is better
            (``MultiTaskMetric``'s ``'score'``). Defaults to ``'score'``.
        rule (str): ``'greater'`` or ``'less'``: which values of ``compare_key`` are
            better. Defaults to ``'greater'``.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False,
                 compare_key: str = 'score',
                 rule: str = 'greater') -> None:
        self._set_comparison(compare_key, rule)
        super().__init__(runner, dataloader, evaluator, fp16=fp16)

    def run(self) -> dict:
        """Validate the student and the teacher.

        Returns:
            dict: the metrics of both copies, keys ``'student/<key>'`` and
            ``'teacher/<key>'``.
        """
        return evaluate_both_copies(self, 'val')


@LOOPS.register_module()
class TeacherStudentTestLoop(CopyComparison, TestLoop):
    """mmengine's :class:`TestLoop` run on the student and on the teacher, as
    :class:`TeacherStudentValLoop` does for validation (``tools/test.py`` then reports both
    copies in its results table). ``tools/test.py --out preds.pkl`` writes
    ``preds_student.pkl`` and ``preds_teacher.pkl``, each the list of per-sample predictions
    that mmdetection's ``--out`` writes for one model.

    Args:
        runner (Runner): the runner.
        dataloader (DataLoader | dict): the test dataloader.
        evaluator (Evaluator | dict | list): the evaluator.
        fp16 (bool): test with autocast. Defaults to False.
        compare_key (str): the metric that decides which copy is better. Defaults to
            ``'score'``.
        rule (str): ``'greater'`` or ``'less'``. Defaults to ``'greater'``.
    """

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 compare_key: str = 'score', rule: str = 'greater') -> None:
        self._set_comparison(compare_key, rule)
        super().__init__(runner, dataloader, evaluator, fp16=fp16)

    def run(self) -> dict:
        """Test the student and the teacher; metrics prefixed ``student/``/``teacher/``."""
        return evaluate_both_copies(self, 'test')
