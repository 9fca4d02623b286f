"""Plot per-task training losses and evaluation metrics from mmengine's scalar logs.

``python tools/analysis_tools/plot_curves.py work_dirs/foundation_x [--visit-len 200]``
reads every ``<work_dir>/<timestamp>/vis_data/scalars.json`` (the lines mmengine's
``LocalVisBackend`` writes: ``step``, ``iter``, ``lr``, ``loss`` and the per-loss and metric
keys) and saves ``<work_dir>/curves.png``: one row per task and kind (``cls`` losses, ``cls``
metrics, ``loc`` losses, ...), against iterations and, when known, against visits.

- Losses ``'<dataset>.<task>.<loss name>'`` (e.g. ``'phantom_ptx.loc.loss_bbox'``) are summed
  into one line per dataset (``--per-key``: one line per loss). mmengine logs the last value of
  every loss it has seen, so a pair outside the current visit repeats its value: a pair's points
  are kept only at the steps where one of its losses changed.
- Metrics ``'<dataset>.<task>/<name>'`` and their means ``'<task>/<name>'`` (dashed), optionally
  prefixed ``'teacher/'`` or ``'student/'``, are drawn one line per key.
- ``--keys`` takes fnmatch patterns (``'*.loc.*' 'lr'``); keys that are neither fxmm losses nor
  metrics (``lr``, ``loss``) go to a last row.
- The visit axis uses the ``visit`` the log lines carry, else ``--visit-len`` (visit =
  step / visit length); without either only iterations are drawn.

Several logs (a resumed run writes a new ``<timestamp>`` folder) are read in order; a later
value at the same step replaces an earlier one.
"""
import argparse
import fnmatch
import glob
import json
import logging
import math
import os.path as osp
import re
from collections import OrderedDict, defaultdict
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.logging import print_log

from fxmm.structures import TASKS

# log keys that are axes, not curves
AXIS_KEYS = ('step', 'iter', 'epoch', 'visit')
# the group of keys that are neither fxmm losses nor metrics
OTHER = 'other'
_MODEL_PREFIX = re.compile(r'^(?P<model>teacher|student)/(?P<rest>.+)$')
_METRIC = re.compile(r'^(?:(?P<dataset>[^/]+)\.)?(?P<task>' + '|'.join(TASKS) +
                     r')/(?P<name>[^/]+)$')


class CurveKey(NamedTuple):
    """What a log key says about itself.

    Attributes:
        key (str): the log key.
        kind (str): ``'loss'``, ``'metric'`` or ``'other'``.
        task (str | None): one of ``TASKS``; None for ``'other'``.
        dataset (str | None): dataset name; None for a mean metric and for ``'other'``.
        name (str): loss or metric name (``'d0.loss_cls'``, ``'mAP40'``); the key for
            ``'other'``.
        model (str): ``'teacher/'``, ``'student/'`` or ``''``.
    """
    key: str
    kind: str
    task: Optional[str]
    dataset: Optional[str]
    name: str
    model: str = ''


def parse_key(key: str) -> CurveKey:
    """Classify a log key as a fxmm loss, a fxmm metric or another scalar.

    Args:
        key (str): e.g. ``'phantom_ptx.loc.d0.loss_bbox'``, ``'teacher/phantom_cls.cls/AUC'``,
            ``'seg/mDice'``, ``'lr'``.

    Returns:
        CurveKey: the parsed key.
    """
    match = _MODEL_PREFIX.match(key)
    model, rest = (match['model'] + '/', match['rest']) if match else ('', key)
    metric = _METRIC.match(rest)
    if metric:
        return CurveKey(key, 'metric', metric['task'], metric['dataset'], metric['name'], model)
    if '/' not in rest:
        parts = rest.split('.')
        for i in range(1, len(parts) - 1):
            name = '.'.join(parts[i + 1:])
            if parts[i] in TASKS and 'loss' in name:
                return CurveKey(key, 'loss', parts[i], '.'.join(parts[:i]), name, model)
    return CurveKey(key, OTHER, None, None, key)


def group_keys(keys: Sequence[str]) -> Dict[str, List[str]]:
    """Sort log keys into the rows of the figure.

    Args:
        keys (Sequence[str]): log keys (axis keys such as ``step`` are left out).

    Returns:
        dict[str, list[str]]: ``'<task>/loss'`` and ``'<task>/metric'`` in :data:`TASKS`
        order, then ``'other'``; each with its keys sorted, only the non-empty groups.
    """
    groups = OrderedDict((f'{task}/{kind}', []) for task in TASKS for kind in ('loss', 'metric'))
    groups[OTHER] = []
    for key in sorted(set(keys) - set(AXIS_KEYS)):
        parsed = parse_key(key)
        groups[OTHER if parsed.kind == OTHER else f'{parsed.task}/{parsed.kind}'].append(key)
    return OrderedDict((name, keys) for name, keys in groups.items() if keys)


def find_scalar_files(path: str) -> List[str]:
    """The scalar logs of a work dir, a run dir, a ``vis_data`` dir, or the file itself.

    In each ``vis_data`` folder, ``scalars.json`` is taken, else its ``<timestamp>.json``
    (the same lines). Folders come in name order, i.e. by timestamp.

    Raises:
        FileNotFoundError: ``path`` does not exist or holds no log.
    """
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path!r} is neither a scalar log file nor a folder')
    vis_dirs = ([path] if osp.basename(osp.normpath(path)) == 'vis_data' else []) + sorted(
        glob.glob(osp.join(path, 'vis_data')) + glob.glob(osp.join(path, '*', 'vis_data')))
    files = []
    for vis_dir in vis_dirs:
        scalars = osp.join(vis_dir, 'scalars.json')
        files += [scalars] if osp.isfile(scalars) else sorted(
            glob.glob(osp.join(vis_dir, '*.json')))
    if not files:
        raise FileNotFoundError(
            f'no scalar log under {path!r}: expected <work_dir>/<timestamp>/vis_data/'
            'scalars.json (written by mmengine LocalVisBackend)')
    return files


def load_scalars(paths: Sequence[str]) -> List[dict]:
    """Read mmengine's scalar logs (one JSON object per line).

    Args:
        paths (Sequence[str]): work dirs, run dirs, ``vis_data`` dirs or log files; see
            :func:`find_scalar_files`.

    Returns:
        list[dict]: the log lines in file and line order.

    Raises:
        FileNotFoundError: a path holds no log.
        ValueError: a line is not a JSON object (the message names the file and line).
    """
    records = []
    for path in paths:
        for file in find_scalar_files(path):
            with open(file) as f:
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ValueError(f'{file}:{lineno}: not a JSON line ({e})') from e
                    if not isinstance(record, dict):
                        raise ValueError(f'{file}:{lineno}: expected a JSON object, got '
                                         f'{type(record).__name__}')
                    records.append(record)
    return records


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def _table(records: Sequence[dict], key: str) -> Dict[float, float]:
    """step -> value of ``key``; a later record at the same step wins."""
    return {r['step']: float(r[key]) for r in records
            if _is_number(r.get('step')) and _is_number(r.get(key))}


def curve(records: Sequence[dict], keys: Sequence[str],
          drop_stale: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """The sum of ``keys`` over the logged steps.

    Args:
        records (Sequence[dict]): log lines with a ``step``.
        keys (Sequence[str]): the keys to add up (one key: its own curve).
        drop_stale (bool): keep only the steps where one of the keys changed from its
            previous logged value (mmengine repeats the last value of a loss that was not
            updated since).

    Returns:
        tuple[np.ndarray, np.ndarray]: steps and values, shape (N,) each, sorted by step.
    """
    tables = [_table(records, key) for key in keys]
    steps = sorted(set().union(*tables))
    if drop_stale:
        changed = set()
        for table in tables:
            previous = None
            for step in sorted(table):
                if table[step] != previous:
                    changed.add(step)
                previous = table[step]
        steps = [step for step in steps if step in changed]
    values = [sum(table[step] for table in tables if step in table) for step in steps]
    return np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)


def smooth_values(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average: point i is the mean of points ``max(0, i-window+1)..i``.

    Args:
        values (np.ndarray): shape (N,).
        window (int): points per mean; 1 leaves the values as they are.
    """
    if window <= 1 or len(values) == 0:
        return values
    cumsum = np.concatenate([[0.], np.cumsum(values)])
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def visit_axis(records: Sequence[dict],
               visit_len: Optional[int] = None) -> Optional[Callable[[np.ndarray], np.ndarray]]:
    """A map from steps to visits, or None when the logs cannot tell.

    Log lines carrying ``visit`` define it (steps in between, e.g. validation lines, are
    interpolated); else ``visit = step / visit_len``.
    """
    pairs = sorted({r['step']: r['visit'] for r in records
                    if _is_number(r.get('step')) and _is_number(r.get('visit'))}.items())
    if pairs:
        steps, visits = np.asarray(pairs, dtype=np.float64).T
        return lambda x: np.interp(x, steps, visits)
    if visit_len:
        return lambda x: np.asarray(x, dtype=np.float64) / visit_len
    return None


def _lines(records: Sequence[dict], group: str, keys: Sequence[str],
           per_key: bool) -> List[Tuple[str, np.ndarray, np.ndarray, bool]]:
    """(label, steps, values, is_mean) per line of a group's panel."""
    if not group.endswith('/loss') or per_key:
        lines = []
        for key in keys:
            parsed = parse_key(key)
            if parsed.kind == 'loss':
                label = f'{parsed.model}{parsed.dataset}.{parsed.name}'
            elif parsed.kind == 'metric':
                label = f'{parsed.model}{parsed.dataset or "mean"} {parsed.name}'
            else:
                label = key
            mean = parsed.kind == 'metric' and parsed.dataset is None
            lines.append((label, *curve(records, [key], parsed.kind == 'loss'), mean))
        return lines
    by_pair = defaultdict(list)
    for key in keys:
        parsed = parse_key(key)
        by_pair[parsed.model + parsed.dataset].append(key)
    return [(label, *curve(records, pair_keys, drop_stale=True), False)
            for label, pair_keys in by_pair.items()]


def _title(group: str, per_key: bool) -> str:
    if group == OTHER:
        return 'other scalars'
    task, kind = group.split('/')
    if kind == 'metric':
        return f'{task} metrics'
    return f'{task} losses' + ('' if per_key else ' (sum per dataset)')


def select_keys(records: Sequence[dict], patterns: Optional[Sequence[str]] = None) -> List[str]:
    """The numeric keys of the logs to plot.

    Args:
        records (Sequence[dict]): log lines.
        patterns (Sequence[str], optional): fnmatch patterns; default: every fxmm loss and
            metric key. A pattern that matches nothing is reported in the log.

    Returns:
        list[str]: the selected keys, sorted.
    """
    available = sorted({k for r in records for k, v in r.items()
                        if k not in AXIS_KEYS and _is_number(v)})
    if patterns is None:
        return [k for k in available if parse_key(k).kind != OTHER]
    selected = set()
    for pattern in patterns:
        matched = fnmatch.filter(available, pattern)
        if not matched:
            print_log(f'--keys pattern {pattern!r} matches no logged key', logger='current',
                      level=logging.WARNING)
        selected.update(matched)
    return sorted(selected)


def plot_curves(records: Sequence[dict],
                out: str,
                keys: Optional[Sequence[str]] = None,
                smooth: int = 1,
                visit_len: Optional[int] = None,
                per_key: bool = False,
                dpi: int = 100) -> str:
    """Draw the losses and metrics of ``records`` into one PNG.

    The figure has one row per non-empty group of :func:`group_keys` and one column per
    x axis (iteration, and visit when :func:`visit_axis` gives one); each panel is 6.4 x 3.2
    inches, so the image is ``(640 * columns) x (320 * rows)`` pixels at ``dpi=100``.

    Args:
        records (Sequence[dict]): log lines from :func:`load_scalars`.
        out (str): the PNG to write.
        keys (Sequence[str], optional): fnmatch patterns choosing the keys; default every
            fxmm loss and metric.
        smooth (int): trailing moving-average window (in logged points) for the losses and
            the other scalars; metrics are drawn as logged. 1 = no smoothing.
        visit_len (int, optional): iterations per visit, for logs without ``visit``.
        per_key (bool): one line per loss instead of one per dataset.
        dpi (int): resolution of the PNG.

    Returns:
        str: ``out``.

    Raises:
        ValueError: nothing to plot (no record, or no key selected); the message lists the
            logged keys.
    """
    if smooth < 1:
        raise ValueError(f'smooth must be a window of >= 1 points, got {smooth}')
    groups = group_keys(select_keys(records, keys))
    if not groups:
        if not records:
            raise ValueError('nothing to plot: the logs have no record')
        wanted = (f'the --keys patterns {list(keys)}' if keys else "fxmm loss or metric "
                  "keys ('<dataset>.<task>.loss_*', '<dataset>.<task>/<metric>')")
        available = sorted({k for r in records for k in r} - set(AXIS_KEYS))
        raise ValueError(f'nothing to plot: no numeric logged key matches {wanted}; logged '
                         f'keys: {available}')
    to_visit = visit_axis(records, visit_len)
    if to_visit is None:
        print_log('no visit axis: the logs carry no `visit` and no visit length was given',
                  logger='current')
    axes_x = [('iteration', lambda x: x)] + ([('visit', to_visit)] if to_visit else [])

    fig = Figure(figsize=(6.4 * len(axes_x), 3.2 * len(groups)), dpi=dpi)
    FigureCanvasAgg(fig)
    subplots = fig.subplots(len(groups), len(axes_x), squeeze=False)
    for row, (group, members) in enumerate(groups.items()):
        lines = _lines(records, group, members, per_key)
        for col, (x_name, to_x) in enumerate(axes_x):
            ax = subplots[row, col]
            for label, steps, values, mean in lines:
                if not group.endswith('/metric'):
                    values = smooth_values(values, smooth)
                ax.plot(to_x(steps), values, label=label, linestyle='--' if mean else '-',
                        linewidth=1.8 if mean else 1.0,
                        marker='o' if group.endswith('/metric') else None, markersize=3)
            ax.set_title(_title(group, per_key), fontsize=10)
            ax.set_xlabel(x_name)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc='best')
    fig.tight_layout()
    fig.savefig(out, format='png')
    return out


def default_out(path: str) -> str:
    """``<work_dir>/curves.png`` for a work dir, or for a log at
    ``<work_dir>/<timestamp>/vis_data/<file>`` (else beside the log)."""
    if osp.isdir(path):
        return osp.join(path, 'curves.png')
    folder = osp.dirname(osp.abspath(path))
    if osp.basename(folder) == 'vis_data':
        folder = osp.dirname(osp.dirname(folder))
    return osp.join(folder, 'curves.png')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot per-task losses and metrics of fxmm training logs')
    parser.add_argument('paths', nargs='+',
                        help='work dirs or vis_data/scalars.json / <timestamp>.json files')
    parser.add_argument('--keys', nargs='+',
                        help="fnmatch patterns of the keys to plot, e.g. '*.loc.*' 'lr' "
                        '(default: every fxmm loss and metric)')
    parser.add_argument('--out', help='PNG to write (default: <work_dir>/curves.png)')
    parser.add_argument('--smooth', type=int, default=1,
                        help='moving-average window over logged points for losses')
    parser.add_argument('--visit-len', type=int,
                        help='iterations per visit, for a visit axis when the logs have no '
                        '`visit` (a logged `visit` wins)')
    parser.add_argument('--per-key', action='store_true',
                        help='one line per loss instead of the sum per dataset')
    parser.add_argument('--dpi', type=int, default=100)
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error(f'--smooth must be >= 1, got {args.smooth}')
    if args.visit_len is not None and args.visit_len < 1:
        parser.error(f'--visit-len must be >= 1, got {args.visit_len}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    out = args.out or default_out(args.paths[0])
    try:
        records = load_scalars(args.paths)
        plot_curves(records, out, keys=args.keys, smooth=args.smooth,
                    visit_len=args.visit_len, per_key=args.per_key, dpi=args.dpi)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f'plot_curves: {e}') from e
    print_log(f'saved {out}', logger='current')
    return out


if __name__ == '__main__':
    main()
