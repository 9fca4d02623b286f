"""Mean +- std over seeds of per-dataset results tables (the phantom ablation's summary).

A run's table is ``results_table(metrics)[1][copy]``: dataset -> column title (the
:data:`~fxmm.evaluation.results_table.COLUMNS` titles) -> value in percent, None where the
dataset lacks the column. :func:`aggregate_over_seeds` takes one such table per (row, seed).
"""
import math
from typing import Dict, Optional, Sequence

import numpy as np

from fxmm.evaluation.results_table import COLUMNS

# row -> seed -> dataset -> column title -> value in percent (None: the dataset lacks it)
Table = Dict[str, Dict[int, Dict[str, Dict[str, Optional[float]]]]]


def seed_stats(values: Sequence[float]) -> dict:
    """The mean and sample std of ``values`` over seeds, nan values left out.

    Returns:
        dict: ``mean`` (None without values, nan when all are nan), ``std`` (None below two
        values), ``n`` (the values that count) and ``values``.
    """
    values = [float(v) for v in values]
    kept = [v for v in values if not math.isnan(v)]
    mean = float(np.mean(kept)) if kept else float('nan') if values else None
    std = float(np.std(kept, ddof=1)) if len(kept) > 1 else None
    return dict(mean=mean, std=std, n=len(kept), values=values)


def dataset_mean(by_dataset: Dict[str, Dict[str, Optional[float]]], column: str) -> float:
    """Mean of ``column`` over the datasets that have it, nan results left out (as
    MultiTaskMetric's summaries); None when no dataset has it."""
    values = [v[column] for v in by_dataset.values() if v.get(column) is not None]
    if not values:
        return None
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float('nan')


def aggregate_over_seeds(rows: Table) -> dict:
    """Per row: per seed the mean over datasets of each column; over seeds their mean and
    std, and per dataset and column the mean and std.

    Returns:
        dict: row -> ``dict(summary={column: stats}, datasets={dataset: {column: stats}},
        per_seed={seed: {column: value}})``, stats as :func:`seed_stats` gives them.
    """
    titles = [title for title, _, _ in COLUMNS]
    out = {}
    for row, by_seed in rows.items():
        per_seed = {seed: {t: dataset_mean(ds, t) for t in titles}
                    for seed, ds in sorted(by_seed.items())}
        datasets = list(dict.fromkeys(d for ds in by_seed.values() for d in ds))
        out[row] = dict(
            per_seed=per_seed,
            summary={t: seed_stats([s[t] for s in per_seed.values() if s[t] is not None])
                     for t in titles},
            datasets={d: {t: seed_stats([ds[d][t] for ds in by_seed.values()
                                         if ds.get(d, {}).get(t) is not None])
                          for t in titles}
                      for d in datasets})
    return out


def stats_cell(stats: dict, num_seeds: Optional[int] = None, digits: int = 2) -> str:
    """``'mean ± std'`` with ``digits`` decimals; ``'(n=k)'`` added when only k of the
    ``num_seeds`` seeds have a defined value (None: never)."""
    if stats['mean'] is None:
        return '-'
    text = f'{stats["mean"]:.{digits}f}'
    if stats['std'] is not None:
        text += f' ± {stats["std"]:.{digits}f}'
    partial = num_seeds is not None and 0 < stats['n'] < num_seeds
    return text + (f' (n={stats["n"]})' if partial else '')


def nan_to_none(value):
    """``value`` with every nan float replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value
