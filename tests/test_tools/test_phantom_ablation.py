"""Tests of tools/analysis_tools/phantom_ablation.py: the budget, the run configs of each
variant (built from the real demo config), the table from fake results, --skip-existing,
and one real single-task run (train.py + test.py) at toy size."""
import json
import math
import os
import os.path as osp
import zipfile

import pytest
from mmengine.config import Config

from fxmm.engine.config_checks import check_config
from fxmm.registry import MODELS
from fxmm.utils import register_all_modules
from tool_scripts import load_tool

pa = load_tool('analysis_tools/phantom_ablation')

DEMO = Config.fromfile(pa.DEMO_CONFIG)
DEMO_PAIRS = pa.check_demo(DEMO, None)
# the demo's budget at scale 1
CYCLES = DEMO.train_cfg.max_visits // len(DEMO_PAIRS)
IPV = DEMO.train_dataloader.sampler.iters_per_visit
# the demo's lesion size and contrast (the ablation refuses phantoms drawn otherwise)
STYLE = dict(lesion_size=float(pa.PHANTOM_ARGS[pa.PHANTOM_ARGS.index('--lesion-size') + 1]),
             lesion_contrast=float(
                 pa.PHANTOM_ARGS[pa.PHANTOM_ARGS.index('--lesion-contrast') + 1]))


def _round(value):
    """Half up, as the script rounds (Python's round() rounds half to even)."""
    return math.floor(value + 0.5)


def test_budget_scales_cycles_then_visit_length():
    full = pa.make_budget(DEMO, 1.0)
    assert (full.cycles, full.iters_per_visit, full.num_pairs) == (CYCLES, IPV, 8)
    assert full.joint_iters == DEMO.train_cfg.max_visits * IPV == full.demo_iters
    assert full.pair_iters * 8 == full.joint_iters
    half = pa.make_budget(DEMO, 0.5)
    assert (half.cycles, half.iters_per_visit) == (_round(CYCLES / 2), IPV)
    # below one cycle the visits shrink, to 2 iterations at least
    short = pa.make_budget(DEMO, 0.5 / CYCLES)
    assert (short.cycles, short.iters_per_visit) == (1, max(2, _round(IPV / 2)))
    tiny = pa.make_budget(DEMO, 1e-3, num_pairs=3)
    assert (tiny.cycles, tiny.iters_per_visit, tiny.joint_iters) == (1, 2, 6)
    assert 'a single-task baseline (a) trains its pair alone for the same 2' in (
        tiny.describe())
    with pytest.raises(ValueError, match='budget-scale must be > 0'):
        pa.make_budget(DEMO, 0)


def test_scaled_schedulers():
    schedulers = [dict(type='LinearLR', by_epoch=False, begin=0, end=40),
                  dict(type='CosineAnnealingLR', by_epoch=False, begin=40, eta_min=0.)]
    assert pa.scaled_schedulers(schedulers, 0.125, 100) == [
        dict(type='LinearLR', by_epoch=False, begin=0, end=5),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=5, eta_min=0.)]
    # a 2-iteration run keeps a 1-iteration warm-up before the cosine
    assert [(s['begin'], s.get('end')) for s in pa.scaled_schedulers(schedulers, 0.001, 2)] \
        == [(0, 1), (1, None)]
    with pytest.raises(ValueError, match='iteration-based'):
        pa.scaled_schedulers([dict(type='LinearLR', begin=0, end=2)], 0.5, 10)


def _run_config(tmp_path, key, pair=None, split='test', probe_samples=0):
    budget = pa.make_budget(DEMO, 1.0)
    runs = [run for run in pa.plan_runs(DEMO_PAIRS, budget, [key], [3], str(tmp_path))
            if pair is None or run.pairs == (pair, )]
    pa.write_configs(runs[0], DEMO, budget, str(tmp_path / 'ph'), skip_existing=False,
                     probe_samples=probe_samples)
    return runs[0], Config.fromfile(runs[0].config(split)), budget


@pytest.mark.parametrize('key,model,hooks,test_loop', [
    ('b', 'FoundationX', [], 'TestLoop'),
    ('c', 'FoundationX', ['LockReleaseHook'], 'TestLoop'),
    ('d', 'TeacherStudent', ['LockReleaseHook', 'TeacherEMAHook'], 'TeacherStudentTestLoop'),
])
def test_joint_variant_configs(tmp_path, key, model, hooks, test_loop):
    run, cfg, budget = _run_config(tmp_path, key)
    assert cfg.model.type == model
    assert [h.type for h in cfg.custom_hooks] == ['ResultsTableHook', *hooks]
    assert cfg.test_cfg.type == test_loop
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.randomness.seed == 3 and cfg.default_hooks.checkpoint.save_best is None
    assert cfg.train_cfg.max_visits == 8 * CYCLES and run.iters == budget.joint_iters
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.test_dataloader, 'test')):
        assert len(loader.dataset.pairs) == 8
        assert {p.dataset.ann_file for p in loader.dataset.pairs} == {
            f'annotations/{split}.json'}
        assert all(p.dataset.data_root.startswith(str(tmp_path / 'ph')) for p in
                   loader.dataset.pairs)
    # the demo's schedule, unchanged at scale 1
    assert cfg.param_scheduler == DEMO.param_scheduler
    check_config(cfg)


@pytest.mark.parametrize('key', ['b', 'd'])
def test_joint_runs_get_the_forgetting_probes_on_val(tmp_path, key):
    _, cfg, _ = _run_config(tmp_path, key, probe_samples=48)
    probe = cfg.custom_hooks[-1]
    assert probe.type == 'ForgettingProbeHook' and probe.num_samples == 48
    assert len(cfg.custom_hooks) == {'b': 2, 'd': 4}[key]
    assert [p.dataset.ann_file for p in probe.dataset.pairs] == ['annotations/val.json'] * 8
    assert [p.task for p in probe.dataset.pairs] == [p.split('.')[1] for p in DEMO_PAIRS]
    assert all(p.dataset.data_root.startswith(str(tmp_path / 'ph'))
               for p in probe.dataset.pairs)
    check_config(cfg)
    # a baseline has no foreign visits: no probes
    _, cfg, _ = _run_config(tmp_path / 'a', 'a', 'phantom_cls.cls', probe_samples=48)
    assert [h.type for h in cfg.custom_hooks] == ['ResultsTableHook']


def test_teacher_variant_evaluates_val_too(tmp_path):
    run, cfg, _ = _run_config(tmp_path, 'd', split='val')
    assert run.eval_splits == ('test', 'val')
    assert {p.dataset.ann_file for p in cfg.test_dataloader.dataset.pairs} == {
        'annotations/val.json'}


@pytest.mark.parametrize('pair,kept,dropped', [
    ('phantom_ptx.loc', 'loc_head', ('cls_head', 'seg_neck', 'seg_head')),
    ('phantom_seg.seg', 'seg_head', ('cls_head', 'loc_head')),
])
def test_single_task_config_keeps_one_pair(tmp_path, pair, kept, dropped):
    run, cfg, budget = _run_config(tmp_path, 'a', pair)
    dataset, task = pair.split('.')
    key = pa.CLASS_KEYS[task]
    assert cfg.model.type == 'FoundationX'
    assert cfg.model.datasets == {dataset: {key: DEMO.datasets[dataset][key]}}
    model = MODELS.build(cfg.model)  # FoundationX builds the paths of the pair's task only
    assert getattr(model, kept) is not None and all(getattr(model, m) is None for m in dropped)
    assert [h.type for h in cfg.custom_hooks] == ['ResultsTableHook']
    assert [(p.task, p.dataset.data_root) for p in cfg.train_dataloader.dataset.pairs] == [
        (task, str(tmp_path / 'ph' / dataset))]
    # the pair's iterations of a joint run, with the warm-up compressed in proportion
    assert cfg.train_cfg.max_visits == CYCLES and run.iters == budget.pair_iters
    warmup = DEMO.param_scheduler[0].end
    assert cfg.param_scheduler[0].end == _round(warmup / 8)
    check_config(cfg)


def test_single_task_model_builds_with_one_head(tmp_path):
    register_all_modules()
    _, cfg, _ = _run_config(tmp_path, 'a', 'phantom_loc.cls')
    model = MODELS.build(cfg.model)
    assert model.cls_head is not None
    assert (model.loc_head, model.seg_neck, model.seg_head) == (None, None, None)
    assert model.task_datasets == dict(cls=['phantom_loc'], loc=[], seg=[])


def test_cfg_options_may_not_change_what_runs_set():
    with pytest.raises(SystemExit):
        pa.parse_args(['--cfg-options', 'train_cfg.max_visits=3'])
    with pytest.raises(SystemExit):
        pa.parse_args(['--cfg-options', 'train_dataloader=1'])
    args = pa.parse_args(['--cfg-options', 'train_dataloader.num_workers=0'])
    assert args.parsed_cfg_options == {'train_dataloader.num_workers': 0}


# ------------------------------------------------------------------ fake finished runs
PAIRS = ['phantom_cls.cls', 'phantom_ptx.cls', 'phantom_ptx.seg']
# variant -> seed -> metric key -> value (fractions, as results.json holds them)
FAKE = {
    'a': {0: {'phantom_cls.cls/AUC': 0.6, 'phantom_ptx.cls/AUC': 0.8,
              'phantom_ptx.seg/Dice': 0.5},
          1: {'phantom_cls.cls/AUC': 0.7, 'phantom_ptx.cls/AUC': 0.9,
              'phantom_ptx.seg/Dice': 0.7}},
    # seed 0: an undefined AUC (null) is left out of the means
    'b': {0: {'phantom_cls.cls/AUC': 0.9, 'phantom_ptx.cls/AUC': None,
              'phantom_ptx.seg/Dice': 0.4, 'cls/mAUC': 0.9, 'score': 0.65},
          1: {'phantom_cls.cls/AUC': 0.7, 'phantom_ptx.cls/AUC': 0.7,
              'phantom_ptx.seg/Dice': 0.6}},
}
STUDENT = {'phantom_cls.cls/AUC': 0.5, 'phantom_ptx.cls/AUC': 0.5, 'phantom_ptx.seg/Dice': 0.2}
TEACHER = {'phantom_cls.cls/AUC': 0.9, 'phantom_ptx.cls/AUC': 0.7, 'phantom_ptx.seg/Dice': 0.3}
# val scores: seed 0 the teacher is better, seed 1 the student
VAL = {0: {'student/score': 0.4, 'teacher/score': 0.6},
       1: {'student/score': 0.7, 'teacher/score': 0.6}}


def _write_json(path, data):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f)


def _write_probes(run):
    """ForgettingProbeHook records of a joint fake run: 2 cycles, every pair at 0.5 before
    its first visit, 0.7 after each, 0.6 before its second."""
    copies = ('student', 'teacher') if run.variant.teacher else ('student', )
    lines = []
    for visit in range(2 * len(run.pairs)):
        pair = run.pairs[visit % len(run.pairs)]
        for when, value in (('before', 0.5 if visit < len(run.pairs) else 0.6),
                            ('after', 0.7)):
            lines += [dict(kind='probe', visit=visit, cycle=visit // len(run.pairs),
                           trained=pair, pair=pair, when=when, copy=copy, metric='AUC',
                           value=value, num_samples=4) for copy in copies]
    with open(osp.join(run.run_dir, 'forgetting.jsonl'), 'w') as f:
        f.writelines(json.dumps(line) + '\n' for line in lines)


def _no_subprocess(*args, **kwargs):
    raise AssertionError(f'a finished run was run again: {args}')


@pytest.fixture(scope='module')
def fake_ablation(tmp_path_factory):
    """main() with --skip-existing over runs that all have a checkpoint and results."""
    tmp = tmp_path_factory.mktemp('fake')
    for name in ('phantom_cls', 'phantom_ptx'):
        os.makedirs(tmp / 'ph' / name)
    argv = ['--variants', 'a', 'b', 'd', '--seeds', '0', '1', '--pairs', *PAIRS,
            '--budget-scale', '0.001', '--phantoms', str(tmp / 'ph'), '--work-dir',
            str(tmp / 'work'), '--skip-existing']
    budget = pa.make_budget(DEMO, 0.001, len(PAIRS))
    for run in pa.plan_runs(PAIRS, budget, ['a', 'b', 'd'], [0, 1], str(tmp / 'work')):
        pa.write_configs(run, DEMO, budget, str(tmp / 'ph'), skip_existing=False,
                         probe_samples=48)
        with zipfile.ZipFile(run.checkpoint, 'w') as ckpt:
            ckpt.writestr('data.pkl', b'')
        key = run.variant.key
        if key == 'a':
            metrics = {k: v for k, v in FAKE['a'][run.seed].items()
                       if k.startswith(run.pairs[0] + '/')}
        elif key == 'b':
            metrics = FAKE['b'][run.seed]
        else:
            metrics = {**{f'student/{k}': v for k, v in STUDENT.items()},
                       **{f'teacher/{k}': v for k, v in TEACHER.items()}}
            _write_json(run.results('val'), VAL[run.seed])
        _write_json(run.results(), metrics)
        if run.variant.joint:
            _write_probes(run)
    mp = pytest.MonkeyPatch()
    mp.setattr(pa.subprocess, 'run', _no_subprocess)
    report = pa.main(argv)
    mp.undo()
    return tmp, argv, report


def test_table_means_over_datasets_then_seeds(fake_ablation):
    _, _, report = fake_ablation
    rows = report['rows']
    assert list(rows) == ['a', 'b', 'd', 'd/student', 'd/teacher']
    # (a): per seed cls means 70 and 80 -> 75 +- 7.07; seg 50, 70 -> 60 +- 14.14
    cls = rows['a']['summary']['Cls AUC']
    assert cls['values'] == pytest.approx([70., 80.])
    assert (cls['mean'], cls['std']) == pytest.approx((75., 50 ** 0.5))
    assert rows['a']['summary']['Seg Dice']['std'] == pytest.approx(200 ** 0.5)
    assert rows['a']['summary']['Loc mAP40']['mean'] is None
    # (b) seed 0: the null AUC is left out, its mean is phantom_cls's 90
    assert rows['b']['summary']['Cls AUC']['values'] == pytest.approx([90., 70.])
    ptx = rows['b']['datasets']['phantom_ptx']['Cls AUC']
    assert (ptx['mean'], ptx['std'], ptx['n']) == (pytest.approx(70.), None, 1)
    # (d): the teacher at seed 0, the student at seed 1 (better on val)
    assert report['chosen'] == {'0': 'teacher', '1': 'student'}
    assert rows['d']['summary']['Cls AUC']['values'] == pytest.approx([80., 50.])
    assert rows['d/teacher']['summary']['Cls AUC']['values'] == pytest.approx([80., 80.])
    assert rows['d/teacher']['summary']['Cls AUC']['std'] == pytest.approx(0.)


def test_markdown_and_json_files(fake_ablation):
    tmp, _, report = fake_ablation
    markdown = (tmp / 'work' / 'ablation.md').read_text()
    assert '| (a) single-task baselines | 75.00 ± 7.07 | - | 60.00 ± 14.14 |' in markdown
    assert ('| (d) = (c) + teacher (Foundation X), better copy on val | 65.00 ± 21.21 |'
            in markdown)
    assert 'report the better): student for seed 1, teacher for seed 0.' in markdown
    assert '| Dataset | (a) | (b) | (d) | (d) student | (d) teacher |' in markdown
    assert ('| phantom_ptx | 85.00 ± 7.07 | 70.00 (n=1) | 60.00 ± 14.14 | 50.00 ± 0.00 | '
            '70.00 ± 0.00 |') in markdown
    assert '--skip-existing' in markdown  # the command that made it
    saved = json.loads((tmp / 'work' / 'ablation.json').read_text())
    assert saved['raw']['b']['0']['phantom_ptx']['Cls AUC'] is None  # nan -> null
    assert saved['rows']['a']['summary'] == report['rows']['a']['summary']
    assert saved['budget']['pair_iters'] == 2 and saved['budget']['num_pairs'] == 3


def test_forgetting_report_of_the_joint_runs(fake_ablation):
    tmp, _, report = fake_ablation
    forgetting = report['forgetting']
    assert list(forgetting) == ['(b) joint', '(d) + teacher']
    assert len(forgetting['(b) joint']['runs']) == 2  # the two seeds
    # gains 20 and 10 points (first and second visit), drop 10 over 2 foreign visits
    student = forgetting['(d) + teacher']['student']
    assert student['gain']['mean'] == pytest.approx(15.)
    assert student['drop_per_visit']['mean'] == pytest.approx(5.)
    assert 'teacher' in forgetting['(d) + teacher']
    assert (tmp / 'work' / 'forgetting' / 'forgetting.md').is_file()


def test_skip_existing_refuses_runs_made_otherwise(fake_ablation):
    _, argv, _ = fake_ablation
    argv = [a if a != '0.001' else '0.5' for a in argv]
    with pytest.raises(ValueError, match='written with other settings'):
        pa.main(argv)


# ------------------------------------------------------------------ one real run
def test_end_to_end_single_task_run(tmp_path, monkeypatch):
    """A 2-iteration baseline of one cls pair: tools/train.py then tools/test.py; then a
    --skip-existing rerun reuses it without starting anything."""
    from data_converters.synthetic import generate_phantom_datasets
    generate_phantom_datasets(str(tmp_path / 'ph'), num_train=8, num_val=4, num_test=4,
                              size=64, datasets=['phantom_cls'], **STYLE)
    argv = ['--variants', 'a', '--pairs', 'phantom_cls.cls', '--seeds', '0',
            '--budget-scale', '0.001', '--phantoms', str(tmp_path / 'ph'),
            '--work-dir', str(tmp_path / 'work'), '--cfg-options',
            'train_dataloader.batch_size=4', 'train_dataloader.sampler.batch_size=4',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    report = pa.main(argv)
    run_dir = tmp_path / 'work' / 'a' / 'seed0' / 'phantom_cls.cls'
    assert (run_dir / 'iter_2.pth').is_file()
    assert 'visit 0: pair phantom_cls.cls (2 iters)' in (run_dir / 'train.out').read_text()
    results = json.loads((run_dir / 'test' / 'test_results' / 'results.json').read_text())
    cls = report['rows']['a']['summary']['Cls AUC']
    assert cls['values'] == pytest.approx([100 * results['phantom_cls.cls/AUC']])
    assert report['budget']['batch_size'] == 4  # --cfg-options reach the budget's report

    monkeypatch.setattr(pa.subprocess, 'run', _no_subprocess)
    again = pa.main([*argv[:-7], '--skip-existing', *argv[-7:]])
    assert again['rows'] == report['rows']


def test_phantom_args_are_the_makefiles_and_checked(tmp_path):
    with open(osp.join(pa.ROOT, 'Makefile')) as f:
        line = next(line for line in f if line.startswith('PHANTOM_ARGS ?='))
    assert tuple(line.split('?=')[1].split()) == pa.PHANTOM_ARGS
    from data_converters.synthetic import generate_phantom_datasets
    size = 2 * STYLE['lesion_size']
    generate_phantom_datasets(str(tmp_path), 1, 1, 1, size=32, datasets=['phantom_cls'],
                              lesion_size=size)
    with pytest.raises(ValueError, match=rf"train.json: metainfo source .*lesion size {size:g}, "
                       r"lesion contrast 1\)' is not the demo's phantoms"):
        pa.ensure_phantoms(str(tmp_path), ['phantom_cls.cls'])
    generate_phantom_datasets(str(tmp_path), 1, 1, 1, size=32, datasets=['phantom_cls'],
                              overwrite=True, **STYLE)
    pa.ensure_phantoms(str(tmp_path), ['phantom_cls.cls'])  # the demo's: accepted
