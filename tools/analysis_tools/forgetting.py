"""What cyclic training forgets: read the records of ``ForgettingProbeHook`` runs, average the
drops and the drift, and plot them per variant.

``python tools/analysis_tools/forgetting.py joint=work_dirs/b/seed0 joint=work_dirs/b/seed1
lock-release=work_dirs/c/seed0 ... --out work_dirs/forgetting``

Each positional argument is ``LABEL=RUN_DIR`` (a run's work dir, holding the hook's
``forgetting.jsonl``); runs with the same label are seeds of one variant. For every run, copy
(``student``, and ``teacher`` for a teacher-student model) and pair ``p`` (visited at position
``i`` of the ``N``-pair cycle):

- *gain* of cycle ``c``: ``after(c) - before(c)``, what the pair's own visit taught;
- *drop* of cycle ``c``: ``after(c) - before(c + 1)``, what the ``N - 1`` visits to the other
  pairs in between took away (positive = forgotten), and the *drop per foreign visit*, that
  divided by ``N - 1``;
- *drift*: the relative change ``||w_end - w_start|| / ||w_start||`` of each shared group
  (backbone, loc encoder, seg neck) over one visit, by the task of the visit.

Values are metric points (AUC, mAP40, Dice in %) and drift in %; per run the mean over its
pairs and cycles, then the mean +- std over the seeds of a label. Writes ``forgetting.md``,
``forgetting.json``, ``forgetting_curves.png`` (each pair's metric before and after its
visits, per variant) and ``forgetting_drift.png`` (shared layers' drift per visit) to
``--out``.
"""
import argparse
import json
import logging
import math
import os
import os.path as osp
import shlex
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from fxmm.models.teacher_student import COPIES
from fxmm.structures.cxr_data_sample import TASKS
from seed_summary import seed_stats, stats_cell  # this folder's (the script's sys.path[0])

RECORDS = 'forgetting.jsonl'


def read_records(run_dir: str) -> Tuple[dict, dict]:
    """The probe and drift records of one run, the last one of each key kept (a resumed run
    appends what it probes again); a line that is not JSON (a killed write) is skipped.

    Returns:
        tuple[dict, dict]: probes ``(copy, pair, visit, when) -> record`` and drifts
        ``(copy, group, visit) -> record``.

    Raises:
        FileNotFoundError: the run has no records file.
    """
    path = osp.join(run_dir, RECORDS)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} missing: train the run with ForgettingProbeHook '
                                "(phantom_ablation.py adds it to the joint runs)")
    probes, drifts = {}, {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                print_log(f'{path}:{number}: not a JSON record, skipped', logger='current',
                          level=logging.WARNING)
                continue
            if record['kind'] == 'probe':
                probes[(record['copy'], record['pair'], record['visit'], record['when'])] = record
            else:
                drifts[(record['copy'], record['group'], record['visit'])] = record
    return probes, drifts

def _pair_order(probes: dict) -> List[str]:
    """The pairs in visit order (pair of visit k is at position k mod N)."""
    first = {}
    for (_, pair, visit, _), _record in probes.items():
        first[pair] = min(first.get(pair, visit), visit)
    return sorted(first, key=first.get)

def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else float('nan')

def run_summary(probes: dict, drifts: dict) -> dict:
    """One run's numbers per copy (see the module docstring).

    Returns:
        dict: copy -> ``gain``, ``drop``, ``drop_per_visit`` (all pairs), ``drop/<task>``
        (per foreign visit, that task's pairs), ``drift/<group>/<task>`` (mean relative drift
        in % over the visits of that task), ``num_drops`` and ``pairs`` (pair -> lists
        ``gain`` and ``drop`` by cycle).
    """
    pairs = _pair_order(probes)
    num_pairs = len(pairs)
    summary = {}
    copies = sorted({key[0] for key in probes} | {key[0] for key in drifts},
                    key=lambda c: COPIES.index(c) if c in COPIES else len(COPIES))
    for copy in copies:
        per_pair, gains, drops, task_drops = {}, [], [], defaultdict(list)
        for i, pair in enumerate(pairs):
            visits = sorted(v for (c, p, v, w) in probes if c == copy and p == pair)

            def value(visit, when, pair=pair):
                record = probes.get((copy, pair, visit, when))
                return 100 * record['value'] if record else float('nan')

            cycles = sorted({v // num_pairs for v in visits})
            gain = [value(c * num_pairs + i, 'after') - value(c * num_pairs + i, 'before')
                    for c in cycles]
            drop = [value(c * num_pairs + i, 'after') - value((c + 1) * num_pairs + i, 'before')
                    for c in cycles]
            per_pair[pair] = dict(cycles=cycles, gain=gain, drop=drop)
            gains += gain
            drops += drop
            task_drops[pair.rsplit('.', 1)[1]] += drop
        foreign = max(num_pairs - 1, 1)
        entry = dict(gain=_mean(gains), drop=_mean(drops), drop_per_visit=_mean(drops) / foreign,
                     num_drops=sum(not math.isnan(d) for d in drops), pairs=per_pair)
        for task in TASKS:
            entry[f'drop/{task}'] = _mean(task_drops[task]) / foreign
        by_group = defaultdict(list)
        for (c, group, _), record in drifts.items():
            if c == copy:
                by_group[(group, record['task'])].append(100 * record['relative'])
        for (group, task), values in sorted(by_group.items()):
            entry[f'drift/{group}/{task}'] = _mean(values)
        summary[copy] = entry
    return summary

def curves(probes: dict, copy: str) -> Dict[str, Tuple[list, list]]:
    """pair -> (x, y): its metric (%) at each probe, ``x`` the number of visits trained
    (``before`` visit k: k; ``after``: k + 1)."""
    out = {}
    for pair in _pair_order(probes):
        points = sorted((v + (w == 'after'), 100 * r['value'])
                        for (c, p, v, w), r in probes.items() if c == copy and p == pair)
        out[pair] = ([x for x, _ in points], [y for _, y in points])
    return out

def aggregate(runs: Dict[str, List[str]]) -> dict:
    """label -> copy -> key -> mean/std over the label's runs, plus ``'runs'``."""
    result = {}
    for label, dirs in runs.items():
        summaries = [run_summary(*read_records(d)) for d in dirs]
        copies = list(dict.fromkeys(c for s in summaries for c in s))
        result[label] = dict(runs=list(dirs))
        for copy in copies:
            keys = list(dict.fromkeys(k for s in summaries if copy in s for k in s[copy]
                                      if k != 'pairs'))
            # nan (undefined) values left out: a key none of the runs defines shows '-'
            result[label][copy] = {
                k: seed_stats([s[copy][k] for s in summaries
                               if copy in s and k in s[copy] and not math.isnan(s[copy][k])])
                for k in keys}
    return result

def render_markdown(result: dict, command: str) -> str:
    """The two tables: metric gain / drop, and the shared layers' drift."""
    rows = [(label, copy) for label, entry in result.items() for copy in entry
            if copy != 'runs']
    num_runs = {label: len(entry['runs']) for label, entry in result.items()}
    lines = ['# Forgetting in cyclic training', '', f'Command: `{command}`', '',
             'Per run the mean over its pairs and cycles, then mean ± std over the runs '
             '(seeds) of a variant; metric points (AUC, mAP40, Dice in %). Gain: a pair\'s '
             'metric after its own visit minus before it. Drop: after its visit minus before '
             'its next one (positive = forgotten during the visits to the other pairs); per '
             'foreign visit: that divided by the number of other pairs.', '',
             '| Variant (runs) | copy | gain per own visit | drop per foreign visit | '
             'cls pairs | loc pairs | seg pairs |', '|---|---|---:|---:|---:|---:|---:|']
    for label, copy in rows:
        s = result[label][copy]
        lines.append(f'| {label} ({num_runs[label]}) | {copy} | {stats_cell(s["gain"])} | '
                     f'{stats_cell(s["drop_per_visit"], digits=3)} | '
                     + ' | '.join(stats_cell(s[f'drop/{t}'], digits=3) for t in TASKS) + ' |')
    drift_keys = list(dict.fromkeys(k for label, copy in rows for k in result[label][copy]
                                    if k.startswith('drift/')))
    if drift_keys:
        lines += ['', 'Drift of the shared layers over one visit, '
                  '`||w_end - w_start|| / ||w_start||` in %, mean over the visits of each task:',
                  '', '| Variant | copy | ' + ' | '.join(
                      k.split('/', 1)[1].replace('/', ', ') + ' visits' for k in drift_keys)
                  + ' |', '|---|---|' + '---:|' * len(drift_keys)]
        for label, copy in rows:
            s = result[label][copy]
            lines.append(f'| {label} | {copy} | ' + ' | '.join(
                stats_cell(s.get(k, dict(mean=None)), digits=3) for k in drift_keys) + ' |')
    return '\n'.join(lines) + '\n'

def plot(runs: Dict[str, List[str]], out_dir: str) -> List[str]:
    """``forgetting_curves.png`` (one panel per pair: its metric over the visits, mean over
    a variant's runs, student solid, teacher dashed) and ``forgetting_drift.png`` (one panel
    per shared group: drift per visit). Returns the paths written."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    loaded = {label: [read_records(d) for d in dirs] for label, dirs in runs.items()}
    pairs = list(dict.fromkeys(p for records in loaded.values() for probes, _ in records
                               for p in _pair_order(probes)))
    cols = min(4, max(len(pairs), 1))
    rows = math.ceil(len(pairs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    colours = dict(zip(runs, plt.rcParams['axes.prop_cycle'].by_key()['color'] * 4))
    for ax, pair in zip(axes.flat, pairs):
        for label, records in loaded.items():
            for copy, style in (('student', '-'), ('teacher', '--')):
                series = [curves(probes, copy).get(pair) for probes, _ in records]
                series = [s for s in series if s and s[0]]
                if not series:
                    continue
                x = series[0][0]
                y = np.nanmean([s[1] for s in series if s[0] == x], axis=0)
                ax.plot(x, y, style, color=colours[label], lw=1,
                        label=f'{label} {copy}' if copy == 'teacher' else label)
        ax.set_title(pair, fontsize=9)
        ax.set_xlabel('visits trained', fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(pairs):]:
        ax.axis('off')
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("each pair's val metric (%) before and after its own visits (sawtooth: "
                 'up in its visit, down during the others)', fontsize=9)
    fig.tight_layout()
    paths = [osp.join(out_dir, 'forgetting_curves.png')]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    groups = list(dict.fromkeys(g for records in loaded.values() for _, drifts in records
                                for (_, g, _) in drifts))
    if groups:
        fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3),
                                 squeeze=False)
        for ax, group in zip(axes.flat, groups):
            for label, records in loaded.items():
                per_visit = defaultdict(list)
                for _, drifts in records:
                    for (copy, g, visit), r in drifts.items():
                        if g == group and copy == 'student':
                            per_visit[visit].append(100 * r['relative'])
                visits = sorted(per_visit)
                ax.plot(visits, [np.mean(per_visit[v]) for v in visits], '.-', ms=2, lw=0.7,
                        color=colours[label], label=label)
            ax.set_yscale('log')
            ax.set_title(f'{group}: student drift per visit (%)', fontsize=9)
            ax.set_xlabel('visit', fontsize=8)
            ax.tick_params(labelsize=7)
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        paths.append(osp.join(out_dir, 'forgetting_drift.png'))
        fig.savefig(paths[1], dpi=110)
        plt.close(fig)
    return paths

def _runs_from_args(items: Sequence[str]) -> Dict[str, List[str]]:
    runs: Dict[str, List[str]] = {}
    for item in items:
        label, sep, run_dir = item.partition('=')
        if not sep or not label or not run_dir:
            raise SystemExit(f'forgetting.py: error: {item!r} is not LABEL=RUN_DIR')
        runs.setdefault(label, []).append(run_dir)
    return runs

def report(runs: Dict[str, List[str]], out_dir: str, command: str) -> dict:
    """Aggregate ``runs`` (label -> run dirs), write the Markdown, JSON and plots to
    ``out_dir``; returns what ``forgetting.json`` holds."""
    result = aggregate(runs)
    os.makedirs(out_dir, exist_ok=True)
    markdown = render_markdown(result, command)
    with open(osp.join(out_dir, 'forgetting.md'), 'w') as f:
        f.write(markdown)
    with open(osp.join(out_dir, 'forgetting.json'), 'w') as f:
        json.dump(result, f, indent=1)
    plots = plot(runs, out_dir)
    print_log(f'{markdown}\n(written to {out_dir}: forgetting.md, forgetting.json, '
              f'{", ".join(osp.basename(p) for p in plots)})', logger='current')
    return result

def main(argv: Optional[Sequence[str]] = None) -> dict:
    parser = argparse.ArgumentParser(description='Forgetting in cyclic training, from the '
                                     'records of ForgettingProbeHook')
    parser.add_argument('runs', nargs='+', metavar='LABEL=RUN_DIR',
                        help='a run dir and its variant label; repeat a label for seeds')
    parser.add_argument('--out', default='work_dirs/forgetting', help='output folder')
    args = parser.parse_args(argv)
    command = shlex.join(['python', 'tools/analysis_tools/forgetting.py',
                          *(sys.argv[1:] if argv is None else argv)])
    return report(_runs_from_args(args.runs), args.out, command)

if __name__ == '__main__':
    main()
