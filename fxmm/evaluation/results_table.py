"""The paper-style results table (rows datasets; columns Cls AUC, Loc mAP40, Seg Dice)."""
import json
import math
import os
import os.path as osp
import re
from typing import Any, Dict, Optional, Tuple

from fxmm.structures.cxr_data_sample import TASKS
from fxmm.utils.atomic_io import atomic_write_bytes

# (column title, task, metric name in '<dataset>.<task>/<metric>')
COLUMNS = (('Cls AUC', 'cls', 'AUC'), ('Loc mAP40', 'loc', 'mAP40'), ('Seg Dice', 'seg', 'Dice'))
# '[<model>/]<dataset>.<task>/<metric>', e.g. 'teacher/siim.loc/mAP40'
_KEY = re.compile(r'^(?:(?P<model>.+)/)?(?P<dataset>[^/]+)\.(?P<task>{})/(?P<metric>[^/]+)$'
                  .format('|'.join(TASKS)))

Rows = Dict[str, Dict[str, Dict[str, Optional[float]]]]


def _cell(value: Optional[float]) -> str:
    if value is None:
        return '-'
    return 'nan' if math.isnan(value) else f'{value:.2f}'


def results_table(metrics: Dict[str, Any],
                  model_name: str = 'student',
                  wrapper: Optional[str] = None) -> Tuple[str, Rows]:
    """Lay out :class:`~fxmm.evaluation.metrics.MultiTaskMetric` results like the paper.

    One block per model: keys without a model prefix (``'siim.seg/Dice'``) form the block
    ``model_name``; prefixed keys (``'teacher/siim.seg/Dice'``, as a teacher-student loop
    logs them) form a block named by the prefix (unprefixed first, then by name). A block's
    title is its name, followed by ``wrapper`` in parentheses when given
    (``'### teacher (TenCropTTA)'``). Rows are datasets in the order their keys first
    appear; values are shown in percent with two decimals, ``'-'`` where a dataset lacks the
    task, ``'nan'`` where the metric is undefined.

    Args:
        metrics (dict): metric name -> value (fractions in [0, 1]); other keys are ignored.
        model_name (str): the block name of unprefixed keys. Defaults to 'student'.
        wrapper (str, optional): what every model was tested in (a test-time augmentation
            such as ``'TenCropTTA'``), named in every block title. Defaults to None.

    Returns:
        tuple[str, dict]: the markdown text, and the rows: block -> dataset -> column title
        -> value in percent (None where absent).
    """
    found: Dict[str, Dict[str, Dict[Tuple[str, str], float]]] = {}
    first = None  # the block of unprefixed keys, if any
    for key, value in metrics.items():
        match = _KEY.match(key)
        if match is None:
            continue
        model = match['model'] or model_name
        if match['model'] is None:
            first = model_name
        by_dataset = found.setdefault(model, {}).setdefault(match['dataset'], {})
        by_dataset[(match['task'], match['metric'])] = (
            float('nan') if value is None else 100. * float(value))

    order = sorted(found, key=lambda model: (model != first, model))
    rows: Rows = {
        model: {dataset: {title: values.get((task, metric))
                          for title, task, metric in COLUMNS}
                for dataset, values in found[model].items()}
        for model in order
    }
    blocks = []
    for model, table in rows.items():
        title = f'{model} ({wrapper})' if wrapper else model
        lines = [f'### {title}', '',
                 '| Dataset | ' + ' | '.join(title for title, _, _ in COLUMNS) + ' |',
                 '|---|' + '---:|' * len(COLUMNS)]
        lines += [f'| {dataset} | ' + ' | '.join(_cell(v) for v in cells.values()) + ' |'
                  for dataset, cells in table.items()]
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks) + '\n', rows


def _jsonable(value: Any) -> Any:
    """A metric value for JSON: a float, None for nan, or its string if not a number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(value) else value


def save_results(metrics: Dict[str, Any],
                 out_dir: str,
                 model_name: str = 'student',
                 wrapper: Optional[str] = None) -> Tuple[str, str]:
    """Write ``results.json`` (every metric; nan as null) and ``results.md`` (the table).

    Args:
        metrics (dict): metric name -> value, as an evaluation returns them.
        out_dir (str): the folder to write into (created if needed).
        model_name (str): the table's block name of unprefixed keys. Defaults to 'student'.
        wrapper (str, optional): the test-time wrapper named in every block title (see
            :func:`results_table`). Defaults to None.

    Returns:
        tuple[str, str]: the paths of ``results.json`` and ``results.md``.
    """
    os.makedirs(out_dir, exist_ok=True)
    json_path, md_path = osp.join(out_dir, 'results.json'), osp.join(out_dir, 'results.md')
    atomic_write_bytes((json.dumps({k: _jsonable(v) for k, v in metrics.items()}, indent=2)
                        + '\n').encode('utf-8'), json_path)
    atomic_write_bytes(results_table(metrics, model_name, wrapper)[0].encode('utf-8'),
                       md_path)
    return json_path, md_path
