"""The phantom ablation: what joint training, Lock-Release and the teacher each add.

``python tools/analysis_tools/phantom_ablation.py [--seeds 0 1 2] [--budget-scale 1]``
trains, on the built-in phantoms and with equal budgets, the four rows of the Foundation X
pretraining comparison (method.md section 3, single-dataset baselines in brackets):

- ``a``: single-task baselines - one run per (dataset, task) pair of the demo, the plain
  ``FoundationX`` holding only that pair's head, no Lock-Release, no teacher;
- ``b``: joint cyclic training of all pairs, plain ``FoundationX``, no Lock-Release, no teacher;
- ``c``: ``b`` + ``LockReleaseHook``;
- ``d``: ``c`` + the EMA teacher and consistency loss: ``configs/foundation_x_demo.py`` as is.

Every run is a subprocess of ``tools/train.py`` on a small config written into its run dir,
which inherits the demo config by ``_base_`` and overrides the model, hooks, loops, pairs,
budget and seed. Its final checkpoint is evaluated on the phantom test split by
``tools/test.py``; in ``d`` both copies are, and the main row takes per seed the copy that
is better on the val split (method.md: "report the better, and say which").

Budget: every pair gets the same number of visits and iterations in every variant. A joint
run makes the demo's ``C`` cycles (``max_visits / N``) of visits of ``I`` iterations
(``iters_per_visit``) over the ``N`` pairs; a baseline trains its one pair for those
``C * I`` iterations (``C`` visits), so its pair sees as many batches as in a joint run, and
the ``N`` baselines together train as many iterations as one joint run. The teacher adds no
iterations. The demo's learning-rate schedule (warm-up, cosine) is compressed in proportion
to each run's length. ``--budget-scale`` multiplies ``C`` (and, below one cycle, ``I``, down
to 2 iterations per visit).

Forgetting: every joint run (b-d) trains with a ``ForgettingProbeHook`` that evaluates
each pair on the first ``--probe-samples`` val images just before and just after each of its
visits and records the shared layers' drift per visit; ``forgetting.py`` turns the records
into ``forgetting/`` beside ``--out`` (mean gain per own visit, mean drop per foreign visit,
drift; curves per variant). ``--probe-samples 0`` trains without probes.

Outputs ``--out`` (Markdown: variants x mean over datasets of Cls AUC / Loc mAP40 / Seg Dice,
mean +- std over seeds, then per-dataset tables) and the raw numbers next to it as JSON.
``--skip-existing`` reuses what finished runs wrote, so the script can be killed and
restarted (an unfinished training resumes from its last checkpoint).
"""
import argparse
import json
import math
import os
import os.path as osp
import shlex
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, NamedTuple, Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from fxmm.evaluation.results_table import COLUMNS, results_table
from fxmm.models.teacher_student import COPIES
from fxmm.structures import CLASS_KEYS, pair_name
# this folder's tools (the script's sys.path[0])
import forgetting
import seed_summary

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'foundation_x_demo.py')
# the demo's phantoms (the Makefile's PHANTOM_ARGS, a test keeps the two equal), written
# when --phantoms lacks a dataset
PHANTOM_ARGS = ('--seed', '0', '--num-train', '800', '--num-val', '96', '--num-test', '96',
                '--lesion-size', '2.5', '--lesion-contrast', '4')
# config keys each run's config sets: --cfg-options may not change them (the budget, the
# variant and the bookkeeping of the runs depend on them)
MANAGED_KEYS = ('model', 'custom_hooks', 'train_cfg', 'val_cfg', 'val_dataloader',
                'val_evaluator', 'test_cfg', 'param_scheduler', 'randomness', 'phantom_root',
                'train_dataloader.sampler.iters_per_visit', 'train_dataloader.dataset',
                'test_dataloader.dataset', 'default_hooks.checkpoint')


class Variant(NamedTuple):
    """One row of the ablation.

    Attributes:
        key (str): ``'a'`` .. ``'d'``.
        title (str): the row title.
        joint (bool): all pairs in one run (else one run per pair).
        removed_hooks (tuple[str]): custom hook types of the demo left out.
        teacher (bool): the demo's ``TeacherStudent`` model (else its student alone).
        short (str): the row's name in the forgetting report.
    """
    key: str
    title: str
    joint: bool
    removed_hooks: tuple
    teacher: bool
    short: str


VARIANTS = {v.key: v for v in (
    Variant('a', '(a) single-task baselines', False, ('LockReleaseHook', 'TeacherEMAHook'),
            False, '(a) single-task'),
    Variant('b', '(b) joint cyclic', True, ('LockReleaseHook', 'TeacherEMAHook'), False,
            '(b) joint'),
    Variant('c', '(c) = (b) + Lock-Release', True, ('TeacherEMAHook', ), False,
            '(c) + Lock-Release'),
    Variant('d', '(d) = (c) + teacher (Foundation X)', True, (), True, '(d) + teacher'),
)}


class Budget(NamedTuple):
    """The training budget of every run.

    Attributes:
        cycles (int): visits to each pair (a joint run makes this many cycles).
        iters_per_visit (int): iterations of one visit.
        num_pairs (int): the (dataset, task) pairs trained: the demo's or ``--pairs``.
        batch_size (int): images per iteration.
        demo_iters (int): the demo's iterations at scale 1, the reference of its schedule.
    """
    cycles: int
    iters_per_visit: int
    num_pairs: int
    batch_size: int
    demo_iters: int

    @property
    def pair_iters(self) -> int:
        """int: iterations each pair trains, in every variant."""
        return self.cycles * self.iters_per_visit

    @property
    def joint_iters(self) -> int:
        """int: iterations of a joint run."""
        return self.num_pairs * self.pair_iters

    def describe(self) -> str:
        """str: the budget in words, for the log and the report."""
        return (f'every (dataset, task) pair trains {self.cycles} visits x '
                f'{self.iters_per_visit} iterations = {self.pair_iters} iterations at batch '
                f'{self.batch_size}: a joint run (b-d) makes {self.cycles} cycles over the '
                f'{self.num_pairs} pairs ({self.joint_iters} iterations), a single-task '
                f'baseline (a) trains its pair alone for the same {self.pair_iters} '
                f"iterations; the demo's lr schedule ({self.demo_iters} iterations) is "
                "compressed to each run's length")


def make_budget(demo: Config, scale: float, num_pairs: Optional[int] = None) -> Budget:
    """The budget of the demo config times ``scale``.

    Whole cycles are scaled (rounded, at least one); below one cycle the visits get shorter
    instead (at least 2 iterations, so that a Lock-Release visit has a locked and a released
    iteration).

    Args:
        demo (Config): the demo config (``train_cfg.max_visits``, the sampler's
            ``iters_per_visit``, ``phantom_pairs``).
        scale (float): the budget multiplier, > 0.
        num_pairs (int, optional): the number of pairs trained (``--pairs``). Defaults to
            the demo's.

    Returns:
        Budget: the budget.
    """
    if not scale > 0:
        raise ValueError(f'--budget-scale must be > 0, got {scale}')
    demo_pairs = len(demo.phantom_pairs)
    max_visits = demo.train_cfg.max_visits
    iters_per_visit = demo.train_dataloader.sampler.get('iters_per_visit')
    if not isinstance(iters_per_visit, int) or max_visits % demo_pairs:
        raise ValueError(f'{demo.filename}: the ablation needs whole cycles of fixed-length '
                         f'visits, got train_cfg.max_visits={max_visits} for {demo_pairs} '
                         f'pairs and train_dataloader.sampler.iters_per_visit='
                         f'{iters_per_visit!r}')
    cycles = max_visits // demo_pairs * scale
    if cycles >= 1:
        scaled = (math.floor(cycles + 0.5), iters_per_visit)
    else:
        scaled = (1, max(2, math.floor(iters_per_visit * cycles + 0.5)))
    return Budget(*scaled, num_pairs=num_pairs or demo_pairs,
                  batch_size=demo.train_dataloader.batch_size,
                  demo_iters=max_visits * iters_per_visit)


def scaled_schedulers(schedulers: Sequence[dict], factor: float, total: int) -> List[dict]:
    """The iteration-based ``schedulers`` with ``begin``/``end`` times ``factor``, kept
    inside ``[0, total]`` with a non-empty warm-up; an ``end`` left out stays out (the
    scheduler then ends with training)."""
    scaled = []
    for scheduler in schedulers:
        scheduler = dict(scheduler)
        if scheduler.get('by_epoch', True):
            raise ValueError(f'the ablation scales iteration-based schedulers only '
                             f'(by_epoch=False), got {scheduler}')
        for key in ('begin', 'end'):
            if scheduler.get(key):
                scheduler[key] = min(max(1, math.floor(scheduler[key] * factor + 0.5)),
                                     total - 1)
        scaled.append(scheduler)
    return scaled


# a run config's start: what it is, the data and the pairs (format fields in braces)
CONFIG_HEAD = """\
# Phantom ablation {title}, seed {seed}{pair}, evaluated on the {split} split.
# Written by tools/analysis_tools/phantom_ablation.py: the _base_ config with these changes.
_base_ = {demo!r}

phantom_root = {root!r}
# the '<dataset>.<task>' pairs trained and evaluated
ablation_pairs = {pairs}


def _select(loader):
    \"\"\"The pairs of `loader` in `ablation_pairs`, read from `phantom_root`.\"\"\"
    return [dict(pair, dataset=dict(pair.dataset, data_root=phantom_root + name))
            for (name, task), pair in zip(_base_.phantom_pairs, loader.dataset.pairs)
            if f'{{name}}.{{task}}' in ablation_pairs]


"""
# the forgetting probes of a joint run (appended to its custom_hooks)
PROBE_HOOK = """ + [
    # what each visit teaches and the others take away (tools/analysis_tools/forgetting.py)
    dict(type='ForgettingProbeHook', num_samples={num_samples},
         dataset=dict(type='MultiTaskDataset', pairs=_select(_base_.val_dataloader)))]
"""
# a run config's end: budget, data, no validation while training, schedule, seed
CONFIG_TAIL = """\
train_cfg = dict(max_visits={visits})
train_dataloader = dict(sampler=dict(iters_per_visit={iters_per_visit}),
                        dataset=dict(pairs=_select(_base_.train_dataloader)))
test_dataloader = dict(dataset=dict(pairs=_select(_base_.{split}_dataloader)))
# no validation while training: tools/test.py evaluates the final checkpoint
val_cfg = None
val_dataloader = None
val_evaluator = None
# the schedule compressed to this run's length
param_scheduler = {schedulers}
default_hooks = dict(checkpoint=dict(interval={interval}, save_best=None, max_keep_ckpts=1))
randomness = dict(seed={seed})
"""
# checkpoints written in a run, the last one at its end (what --skip-existing resumes from)
CHECKPOINTS_PER_RUN = 4


class Run(NamedTuple):
    """One training run of the ablation.

    Attributes:
        variant (Variant): its row.
        seed (int): ``randomness.seed``.
        pairs (tuple[str]): the ``'<dataset>.<task>'`` pairs it trains and is evaluated on
            (one for a baseline).
        run_dir (str): its work dir (config, checkpoints, logs, results).
        iters (int): its training iterations.
    """
    variant: Variant
    seed: int
    pairs: tuple
    run_dir: str
    iters: int

    @property
    def name(self) -> str:
        """str: e.g. ``'a seed 0 phantom_cls.cls'``, ``'d seed 1'``."""
        name = f'{self.variant.key} seed {self.seed}'
        return name if self.variant.joint else f'{name} {self.pairs[0]}'

    @property
    def checkpoint(self) -> str:
        """str: the final checkpoint, the one evaluated."""
        return osp.join(self.run_dir, f'iter_{self.iters}.pth')

    def config(self, split: str = 'test') -> str:
        """The config evaluating on ``split`` (the test one trains too). In a sub-folder:
        mmengine dumps the resolved config into the work dir under the file's name."""
        return osp.join(self.run_dir, 'configs', 'run.py' if split == 'test'
                        else f'run_{split}.py')

    def results(self, split: str = 'test') -> str:
        """The ``results.json`` of tools/test.py on ``split``."""
        return osp.join(self.run_dir, split, 'test_results', 'results.json')

    @property
    def eval_splits(self) -> tuple:
        """The splits evaluated: the val split too where it picks teacher or student."""
        return ('test', 'val') if self.variant.teacher else ('test', )


def _list_text(items: Sequence) -> str:
    """Python text of a list, one item a line."""
    return '[\n' + ''.join(f'    {item!r},\n' for item in items) + ']'


def variant_config(run: Run, demo: Config, budget: Budget, phantom_root: str,
                   eval_split: str = 'test', probe_samples: int = 0) -> str:
    """The text of ``run``'s config: the demo config plus the variant's overrides.

    Args:
        run (Run): the run.
        demo (Config): the demo config (read for the pairs, class lists and schedule).
        budget (Budget): the budget.
        phantom_root (str): the folder holding the phantom datasets.
        eval_split (str): the split ``tools/test.py`` evaluates with this config.
        probe_samples (int): a joint run gets a ``ForgettingProbeHook`` on the first
            ``probe_samples`` val images of each pair; 0 for none.

    Returns:
        str: a Python config inheriting ``demo.filename``.
    """
    variant = run.variant
    text = CONFIG_HEAD.format(
        title=variant.title, seed=run.seed, split=eval_split, demo=demo.filename,
        pair='' if variant.joint else f', pair {run.pairs[0]}',
        root=osp.join(osp.abspath(phantom_root), ''),
        pairs=_list_text(run.pairs))
    if not variant.teacher:
        text += 'model = dict(  # the student alone, no teacher\n    _base_.student, _delete_=True'
        if not variant.joint:  # the pair's class list and head only
            dataset, task = run.pairs[0].split('.')
            key = CLASS_KEYS[task]
            text += (f',\n    datasets={{{dataset!r}: dict({key}=_base_.datasets[{dataset!r}]'
                     f'[{key!r}])}}')
        text += ")\ntest_cfg = dict(type='TestLoop')\n"
    probe = variant.joint and probe_samples > 0
    if variant.removed_hooks or probe:
        text += ('custom_hooks = [hook for hook in _base_.custom_hooks\n'
                 f'                if hook.type not in {variant.removed_hooks!r}]')
        text += PROBE_HOOK.format(num_samples=probe_samples) if probe else '\n'
    schedulers = scaled_schedulers(demo.param_scheduler, run.iters / budget.demo_iters,
                                   run.iters)
    return text + CONFIG_TAIL.format(
        visits=run.iters // budget.iters_per_visit, iters_per_visit=budget.iters_per_visit,
        split=eval_split, schedulers=_list_text(schedulers),
        interval=math.ceil(run.iters / CHECKPOINTS_PER_RUN), seed=run.seed)


def plan_runs(pairs: Sequence[str], budget: Budget, variants: Sequence[str],
              seeds: Sequence[int], work_dir: str) -> List[Run]:
    """The runs of ``variants`` x ``seeds`` over ``pairs``, seed by seed."""
    runs = []
    for seed in seeds:
        for key in variants:
            variant = VARIANTS[key]
            if variant.joint:
                runs.append(Run(variant, seed, tuple(pairs),
                                osp.join(work_dir, key, f'seed{seed}'), budget.joint_iters))
            else:
                runs += [Run(variant, seed, (pair, ), osp.join(work_dir, key, f'seed{seed}', pair),
                             budget.pair_iters)
                         for pair in pairs]
    return runs


def check_demo(demo: Config, pairs: Optional[Sequence[str]]) -> List[str]:
    """Check that the demo config's dataloaders hold its ``phantom_pairs`` in order (the
    run configs select pairs by that order) and return the pairs to ablate: ``pairs``, or
    all the demo's."""
    names = [pair_name(*pair) for pair in demo.phantom_pairs]
    for split in ('train', 'val', 'test'):
        tasks = [pair.task for pair in demo[f'{split}_dataloader'].dataset.pairs]
        if tasks != [name.split('.')[1] for name in names]:
            raise ValueError(f'{demo.filename}: {split}_dataloader.dataset.pairs (tasks '
                             f'{tasks}) do not follow phantom_pairs {names}')
    unknown = sorted(set(pairs or ()) - set(names))
    if unknown:
        raise ValueError(f'--pairs {unknown}: not pairs of {demo.filename} ({names})')
    return [name for name in names if name in pairs] if pairs else names


def write_configs(run: Run, demo: Config, budget: Budget, phantom_root: str,
                  skip_existing: bool, probe_samples: int = 0) -> None:
    """Write ``run``'s config files; with ``skip_existing``, refuse a run dir made with
    other settings (its results would not be this run's)."""
    os.makedirs(osp.dirname(run.config()), exist_ok=True)
    for split in run.eval_splits:
        text = variant_config(run, demo, budget, phantom_root, split, probe_samples)
        path = run.config(split)
        if skip_existing and osp.isfile(path):
            with open(path) as f:
                if f.read() != text:
                    raise ValueError(f'--skip-existing: {path} was written with other settings '
                                     '(budget, phantoms, probes or demo config); use another '
                                     '--work-dir or remove that run dir')
        with open(path, 'w') as f:
            f.write(text)


def _call(cmd: List[str], log_path: str, env: dict) -> None:
    """Run ``cmd``, its output to ``log_path``; on failure raise with the output's end."""
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = ''.join(f.readlines()[-40:])
        raise RuntimeError(f'{shlex.join(cmd)} failed (exit {proc.returncode}); output in '
                           f'{log_path}, last lines:\n{tail}')


def execute(run: Run, skip_existing: bool, cfg_options: Sequence[str], env: dict) -> None:
    """Train ``run`` (unless its final checkpoint exists and ``skip_existing``; an unfinished
    one resumes) and evaluate it on its splits (unless their results exist)."""
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    done = skip_existing and osp.isfile(run.checkpoint) and zipfile.is_zipfile(run.checkpoint)
    if not done:
        _call([sys.executable, osp.join(ROOT, 'tools', 'train.py'), run.config(),
               '--work-dir', run.run_dir, *(['--resume'] if skip_existing else []), *options],
              osp.join(run.run_dir, 'train.out'), env)
    for split in run.eval_splits:
        if done and osp.isfile(run.results(split)):
            continue
        _call([sys.executable, osp.join(ROOT, 'tools', 'test.py'), run.config(split),
               run.checkpoint, '--work-dir', osp.join(run.run_dir, split), *options],
              osp.join(run.run_dir, f'{split}.out'), env)


def _phantom_arg(name: str) -> str:
    return PHANTOM_ARGS[PHANTOM_ARGS.index(name) + 1]


def check_phantom_style(phantom_root: str, name: str) -> None:
    """ValueError if the train annotations of phantom dataset ``name`` say they were drawn
    with another seed or lesion size / contrast than :data:`PHANTOM_ARGS` (e.g. phantoms of
    an older demo); nothing to check when the file is missing."""
    path = osp.join(phantom_root, name, 'annotations', 'train.json')
    if not osp.isfile(path):
        return
    with open(path) as f:
        source = json.load(f).get('metainfo', {}).get('source', '')
    expected = (f"seed {_phantom_arg('--seed')}, lesion size "
                f"{float(_phantom_arg('--lesion-size')):g}, lesion contrast "
                f"{float(_phantom_arg('--lesion-contrast')):g})")
    if not source.endswith(expected):
        raise ValueError(f'{path}: metainfo source {source!r} is not the demo\'s phantoms '
                         f'({expected[:-1]}); regenerate them (python -m '
                         f'data_converters.synthetic --out {phantom_root} '
                         f'{" ".join(PHANTOM_ARGS)} --overwrite) or give another --phantoms')


def ensure_phantoms(phantom_root: str, pairs: Sequence[str]) -> None:
    """Generate the phantom datasets of ``pairs`` missing from ``phantom_root``
    (``data_converters/synthetic.py`` with :data:`PHANTOM_ARGS`); check that the others
    were drawn with them (:func:`check_phantom_style`)."""
    names = sorted({pair.split('.')[0] for pair in pairs})
    for name in names:
        check_phantom_style(phantom_root, name)
    missing = [name for name in names if not osp.isdir(osp.join(phantom_root, name))]
    if missing:
        print_log(f'writing phantoms {missing} to {phantom_root} ({" ".join(PHANTOM_ARGS)})',
                  logger='current')
        os.makedirs(phantom_root, exist_ok=True)
        python_path = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
        _call([sys.executable, '-m', 'data_converters.synthetic', '--out',
               osp.abspath(phantom_root), *PHANTOM_ARGS, '--datasets', *missing],
              osp.join(phantom_root, 'synthetic.out'), dict(os.environ, PYTHONPATH=python_path))


def _load(path: str) -> dict:
    if not osp.isfile(path):
        raise FileNotFoundError(f'results {path} missing: the run did not finish; rerun '
                                'with --skip-existing to complete it')
    with open(path) as f:
        return json.load(f)


def better_side(val_metrics: dict, key: str = 'score') -> str:
    """The copy of a teacher-student model with the higher val ``key`` (ties: the teacher,
    as ``TeacherStudentValLoop`` decides).

    Raises:
        ValueError: a copy's value is missing or nan.
    """
    values = [val_metrics.get(f'{side}/{key}') for side in COPIES]
    if any(v is None or math.isnan(v) for v in values):
        raise ValueError(f'cannot pick teacher or student: val {key} is {values}')
    return 'student' if values[0] > values[1] else 'teacher'


def collect(runs: Sequence[Run]) -> tuple:
    """Read the runs' results into table rows.

    Returns:
        tuple[dict, dict]: the rows (a ``seed_summary.Table``: ``'a'``, ``'b'``, ``'c'``, and
        for the teacher variant ``'d'`` - the copy better on val - ``'d/student'``,
        ``'d/teacher'``)
        and, for ``'d'``, seed -> the copy taken.
    """
    metrics: Dict[tuple, dict] = {}
    for run in runs:  # a baseline's pairs are merged into its variant's metrics
        metrics.setdefault((run.variant.key, run.seed), {}).update(_load(run.results()))
    rows: seed_summary.Table = {}
    chosen: Dict[int, str] = {}
    for (key, seed), values in metrics.items():
        blocks = results_table(values)[1]
        if VARIANTS[key].teacher:
            val = _load(next(r for r in runs if (r.variant.key, r.seed) == (key, seed))
                        .results('val'))
            chosen[seed] = better_side(val)
            for side in COPIES:
                rows.setdefault(f'{key}/{side}', {})[seed] = blocks[side]
            rows.setdefault(key, {})[seed] = blocks[chosen[seed]]
        else:
            rows.setdefault(key, {})[seed] = blocks['student']
    return rows, chosen


def row_title(row: str, short: bool = False) -> str:
    """The title of a row of :func:`collect`, e.g. ``'d/teacher'`` -> ``'(d) = (c) +
    teacher (Foundation X), teacher'`` (``short``: ``'(d) teacher'``)."""
    key, _, side = row.partition('/')
    title = VARIANTS[key].title
    if short:
        return ' '.join((title.split()[0], side)) if side else title.split()[0]
    return title + (f', {side}' if side else
                    ', better copy on val' if VARIANTS[key].teacher else '')


def _chosen_text(chosen: Dict[int, str]) -> str:
    """E.g. ``'teacher for seeds 0, 2, student for seed 1'``."""
    parts = []
    for side in COPIES:
        seeds = [str(seed) for seed in sorted(chosen) if chosen[seed] == side]
        if seeds:
            parts.append(f'{side} for seed{"s" * (len(seeds) > 1)} {", ".join(seeds)}')
    return ', '.join(parts)


def render_markdown(summary: dict, chosen: Dict[int, str], seeds: Sequence[int],
                    budget: Budget, command: str) -> str:
    """The ablation's Markdown report: the main table (rows variants, columns the mean over
    datasets, mean ± std over seeds) and one per-dataset table per metric."""
    titles = [title for title, _, _ in COLUMNS]
    n = len(seeds)
    over_seeds = (f'the mean ± sample std over the {n} seeds {", ".join(map(str, seeds))}'
                  if n > 1 else f'seed {seeds[0]} alone (no std)')
    lines = [
        '# Phantom ablation: joint training, Lock-Release and the teacher', '',
        f'Command: `{command}`', '',
        f'Budget: {budget.describe()}.', '',
        'Evaluation: the final checkpoint of every run on the phantom test split '
        '(tools/test.py); per seed the mean over datasets of each metric (undefined values '
        f'left out), then {over_seeds} (randomness.seed; the same phantoms for all). '
        'Percent; "(n=k)": only k seeds gave a defined value.',
    ]
    if chosen:
        lines += ['', '(d): both copies are evaluated; its main row takes per seed the copy '
                  'with the higher val-split score (the mean of the task summaries; method.md: '
                  f'report the better): {_chosen_text(chosen)}.']
    lines += ['', '| Variant | ' + ' | '.join(titles) + ' |', '|---|' + '---:|' * len(titles)]
    lines += [f'| {row_title(row)} | '
              + ' | '.join(seed_summary.stats_cell(s['summary'][t], n) for t in titles)
              + ' |'
              for row, s in summary.items()]
    lines += ['', '## Per dataset']
    for title in titles:
        datasets = list(dict.fromkeys(
            d for s in summary.values() for d, v in s['datasets'].items()
            if v[title]['mean'] is not None))
        if not datasets:
            continue
        lines += ['', f'### {title}', '',
                  '| Dataset | ' + ' | '.join(row_title(r, short=True) for r in summary)
                  + ' |',
                  '|---|' + '---:|' * len(summary)]
        lines += [f'| {d} | ' + ' | '.join(
            seed_summary.stats_cell(s['datasets'].get(d, {}).get(title, dict(mean=None)), n)
            for s in summary.values()) + ' |' for d in datasets]
    return '\n'.join(lines) + '\n'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Phantom ablation of Foundation X: single-task baselines, joint cyclic '
        'training, + Lock-Release, + teacher; equal budgets, several seeds')
    parser.add_argument('--config', default=DEMO_CONFIG,
                        help='the full-method config on the phantoms (default: the demo)')
    parser.add_argument('--variants', nargs='+', choices=sorted(VARIANTS),
                        default=sorted(VARIANTS), help='rows to run (default: all)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='randomness.seed of the runs (default: 0 1 2)')
    parser.add_argument('--pairs', nargs='+',
                        help="only these '<dataset>.<task>' pairs (default: all the demo's)")
    parser.add_argument('--budget-scale', type=float, default=1.0,
                        help="multiply the demo's training iterations (e.g. 0.25)")
    parser.add_argument('--phantoms', default='data/phantoms',
                        help='the phantom datasets (written with the demo sizes if missing)')
    parser.add_argument('--work-dir', default='work_dirs/phantom_ablation')
    parser.add_argument('--out', help='the Markdown table (default: <work-dir>/ablation.md; '
                        'the raw numbers go next to it as .json)')
    parser.add_argument('--skip-existing', action='store_true',
                        help='reuse finished runs, resume unfinished ones')
    parser.add_argument('--probe-samples', type=int, default=48,
                        help='forgetting probes of the joint runs (ForgettingProbeHook): val '
                        'images per pair evaluated before and after every visit; 0 for none')
    parser.add_argument('--jobs', type=int, default=1, help='runs in parallel')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value settings passed to every train.py/test.py call (e.g. '
                        'train_dataloader.num_workers=0); not the keys each run sets itself')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    if args.probe_samples < 0:
        parser.error(f'--probe-samples must be >= 0, got {args.probe_samples}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds repeats a seed: {args.seeds}')
    options = argparse.Namespace()  # --cfg-options as a dict, as train.py will read them
    try:
        DictAction(['--cfg-options'], 'parsed')(parser, options, args.cfg_options)
    except ValueError as err:
        parser.error(f'--cfg-options: {err} (use key=value)')
    args.parsed_cfg_options = options.parsed
    for key in args.parsed_cfg_options:
        managed = [k for k in MANAGED_KEYS if key == k or key.startswith(k + '.')
                   or k.startswith(key + '.')]
        if managed:
            parser.error(f'--cfg-options {key}: each run sets {managed} itself (use '
                         '--budget-scale, --seeds, --phantoms or --variants)')
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the ablation and write its report; returns what ablation.json holds (nan as
    float)."""
    args = parse_args(argv)
    demo = Config.fromfile(osp.abspath(args.config))
    demo.merge_from_dict(args.parsed_cfg_options)  # e.g. the batch size the budget reports
    pairs = check_demo(demo, args.pairs)
    budget = make_budget(demo, args.budget_scale, len(pairs))
    work_dir = osp.abspath(args.work_dir)
    out = args.out or osp.join(work_dir, 'ablation.md')
    command = shlex.join(['python', osp.relpath(osp.abspath(__file__), ROOT),
                          *(sys.argv[1:] if argv is None else argv)])
    print_log(f'phantom ablation: variants {args.variants}, seeds {args.seeds}, pairs '
              f'{pairs}; budget: {budget.describe()}', logger='current')
    ensure_phantoms(args.phantoms, pairs)

    runs = plan_runs(pairs, budget, args.variants, args.seeds, work_dir)
    for run in runs:
        write_configs(run, demo, budget, args.phantoms, args.skip_existing, args.probe_samples)
    env = dict(os.environ)
    if args.jobs > 1 and 'OMP_NUM_THREADS' not in env:  # share the cores
        env['OMP_NUM_THREADS'] = str(max(1, (os.cpu_count() or 1) // args.jobs))
    start, lock, finished = time.time(), threading.Lock(), []

    def job(run: Run) -> None:
        began = time.time()
        print_log(f'start {run.name} ({run.iters} iterations) in {run.run_dir}',
                  logger='current')
        execute(run, args.skip_existing, args.cfg_options, env)
        with lock:
            finished.append(run)
            print_log(f'[{len(finished)}/{len(runs)}] done {run.name} in '
                      f'{time.time() - began:.0f} s (elapsed {time.time() - start:.0f} s)',
                      logger='current')

    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(job, run) for run in runs]
        try:
            for future in futures:
                future.result()
        except BaseException:  # a failed run stops the ablation: drop the queued runs
            for future in futures:
                future.cancel()
            raise

    rows, chosen = collect(runs)
    summary = seed_summary.aggregate_over_seeds({row: rows[row] for row in sorted(rows)})
    markdown = render_markdown(summary, chosen, args.seeds, budget, command)
    report = dict(command=command, budget=dict(budget._asdict(), pair_iters=budget.pair_iters,
                                               joint_iters=budget.joint_iters),
                  seeds=args.seeds, chosen={str(k): v for k, v in chosen.items()},
                  rows={row: dict(title=row_title(row), **s) for row, s in summary.items()},
                  raw=rows)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(markdown)
    with open(osp.splitext(out)[0] + '.json', 'w') as f:
        json.dump(seed_summary.nan_to_none(report), f, indent=1)
    print_log(f'{markdown}\n(written to {out}; {time.time() - start:.0f} s)', logger='current')
    probed = {}
    for run in runs:
        if run.variant.joint and args.probe_samples:
            probed.setdefault(run.variant.short, []).append(run.run_dir)
    if probed:
        report['forgetting'] = forgetting.report(
            probed, osp.join(osp.dirname(osp.abspath(out)), 'forgetting'), command)
    return report


if __name__ == '__main__':
    main()
