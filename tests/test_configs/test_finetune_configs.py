"""configs/finetune/: the downstream targets x recipes, their phantom twins, and runs of the
twins through tools/train.py on tiny phantoms from a pretrained demo checkpoint.

What a recipe must do is checked on the weights it leaves: full fine-tuning moves the
loaded backbone, the frozen recipe leaves the backbone and the shared neck bit-identical to
the checkpoint while the new head trains, lock-release keeps them for the locked first part
of the run only. One subprocess runs the five twins (about a minute on 2 free CPU cores).
"""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from fxmm.datasets.few_shot import few_shot_indices
from fxmm.registry import DATASETS, MODELS
from fxmm.testing.cli import run_python

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FINETUNE = osp.join(ROOT, 'configs', 'finetune')
RECIPES = ('full', 'frozen', 'lock-release')
# target -> (data variable of configs/_base_/datasets/, its name, task, class list key)
TARGETS = {
    'vindr-organs-loc': ('vindr_cxr_organs_data', 'vindr_cxr_organs', 'loc', 'det_classes'),
    'vindr-organs-seg': ('vindr_cxr_organs_data', 'vindr_cxr_organs', 'seg', 'seg_classes'),
    'jsrt-seg': ('jsrt_data', 'jsrt', 'seg', 'seg_classes'),
    'montgomery-seg': ('montgomery_data', 'montgomery', 'seg', 'seg_classes'),
    'vindr-ribcxr-seg': ('vindr_ribcxr_data', 'vindr_ribcxr', 'seg', 'seg_classes'),
}
TWINS = {'phantom-organs-seg': 'seg', 'phantom-lesions-loc': 'loc'}
TWIN_DATASETS = {'phantom-organs-seg': 'phantom_organs', 'phantom-lesions-loc': 'phantom_lesions'}
# the FoundationX modules of each task's path
TASK_HEADS = dict(loc=['loc_head'], seg=['seg_neck', 'seg_head'])
FEWSHOT = osp.join(FINETUNE, 'fx-ft_swin-b_jsrt-seg-fewshot_full.py')
FEWSHOT_TWIN = osp.join(FINETUNE, 'phantom', 'fx-ft_demo_phantom-organs-seg-fewshot_full.py')
SHOT_KEYS = ('train_dataloader.dataset.pairs.0.dataset.num_samples',
             'train_dataloader.dataset.pairs.0.dataset.subset_seed')


def leaf(target, recipe):
    return osp.join(FINETUNE, f'fx-ft_swin-b_{target}_{recipe}.py')


def twin(target, recipe):
    return osp.join(FINETUNE, 'phantom', f'fx-ft_demo_{target}_{recipe}.py')


def check_recipe(cfg, recipe, task):
    """The recipe's hooks: the runtime's ResultsTableHook, plus a LockReleaseHook that
    freezes the task's shared modules for all (frozen) or half (lock-release) of the one
    visit that is the whole run."""
    hooks = {hook.type: hook for hook in cfg.custom_hooks}
    assert 'ResultsTableHook' in hooks
    # the leaf read the tables and left them out of the saved config
    assert cfg.targets is None and cfg.recipes is None
    assert cfg.train_cfg.type == 'CyclicTrainLoop' and cfg.train_cfg.max_visits == 1
    assert cfg.train_dataloader.sampler.iters_per_visit == cfg.max_iters
    if recipe == 'full':
        assert 'LockReleaseHook' not in hooks
        return
    lock = hooks['LockReleaseHook']
    assert list(lock.lock_tasks) == [task]
    # the modules to freeze are the model's answer (FoundationX.shared_modules)
    assert lock.get('lock_modules') is None
    assert lock.lock_fraction == {'frozen': 1.0, 'lock-release': 0.5}[recipe]


@pytest.mark.parametrize('target', TARGETS)
@pytest.mark.parametrize('recipe', RECIPES)
def test_real_leaves(target, recipe):
    var, name, task, key = TARGETS[target]
    cfg = Config.fromfile(leaf(target, recipe))
    classes = cfg[var][key]
    assert list(cfg.model.datasets) == [name]
    assert cfg.model.datasets[name][key] == classes
    # only the task's head is built (test_config_inheritance.py builds every leaf's model)
    assert cfg.model.datasets[name].tasks == [task]
    assert cfg.model.init_cfg == dict(type='Pretrained', checkpoint=cfg.pretrained,
                                      prefix='student.')
    for split in ('train', 'val', 'test'):
        pairs = cfg[f'{split}_dataloader'].dataset.pairs
        assert len(pairs) == 1 and (pairs[0].name, pairs[0].task) == (name, task)
        dataset = pairs[0].dataset
        assert dataset.data_root == cfg.data_root + cfg[var].folder
        assert dataset.ann_file == cfg[var].ann_file[split]
        assert dataset.test_mode == (split != 'train') and 'num_samples' not in dataset
    assert (cfg.train_dataloader.batch_size, cfg.max_iters, cfg.img_size) == (24, 2000, 224)
    check_recipe(cfg, recipe, task)


def test_fewshot_leaf_knobs_reach_the_dataset():
    cfg = Config.fromfile(FEWSHOT)
    dataset = cfg.train_dataloader.dataset.pairs[0].dataset
    assert (dataset.num_samples, dataset.subset_seed) == (3, 0)
    assert cfg.model.datasets.jsrt.seg_classes[-2:] == ['left_clavicle', 'right_clavicle']
    check_recipe(cfg, 'full', 'seg')
    # the documented seed loop: --cfg-options on the dataset dict
    cfg.merge_from_dict(dict(zip(SHOT_KEYS, (24, 2))))
    dataset = cfg.train_dataloader.dataset.pairs[0].dataset
    assert (dataset.num_samples, dataset.subset_seed) == (24, 2)
    # evaluation stays on the whole splits
    assert 'num_samples' not in cfg.val_dataloader.dataset.pairs[0].dataset


def test_every_recipe_has_a_phantom_twin_of_the_demo_model():
    demo = Config.fromfile(osp.join(ROOT, 'configs', 'foundation_x_demo.py'))
    for target, task in TWINS.items():
        for recipe in RECIPES:
            cfg = Config.fromfile(twin(target, recipe))
            check_recipe(cfg, recipe, task)
            assert cfg.model.init_cfg.checkpoint == 'work_dirs/foundation_x_demo/iter_2560.pth'
            assert cfg.model.init_cfg.prefix == 'student.'
            # the demo's student, so that its checkpoint loads (the demo's per-dataset
            # prior_prob initialises heads of datasets the twins do not have)
            for part in ('data_preprocessor', 'loc_head', 'seg_neck', 'seg_head'):
                if cfg.model[part] is not None:
                    expected = {k: v for k, v in demo.student[part].items()
                                if k != 'prior_prob'}
                    assert cfg.model[part] == expected, part
            backbone = dict(demo.student.backbone)
            backbone.pop('with_cp', None)
            assert cfg.model.backbone == backbone
            # only the task's head is built; the lock prefixes match parameters of the model
            model = MODELS.build(cfg.model)
            assert model.task_datasets == {t: [TWIN_DATASETS[target]] if t == task else []
                                           for t in ('cls', 'loc', 'seg')}
            assert [head for head in ('cls_head', 'loc_head', 'seg_neck', 'seg_head')
                    if getattr(model, head) is not None] == TASK_HEADS[task]
            names = [n for n, _ in model.named_parameters()]
            for prefix in model.shared_modules(task):
                assert any(n == prefix or n.startswith(prefix + '.') for n in names), prefix
    check_recipe(Config.fromfile(FEWSHOT_TWIN), 'full', 'seg')


# ----------------------------------------------------------------------------------------
# The twins through tools/train.py
# ----------------------------------------------------------------------------------------
SIZE = 64
# 2 iterations at batch 2 and 64 px, one evaluation and a checkpoint at the end
TINY = [
    'train_dataloader.sampler.iters_per_visit=2', 'train_cfg.val_interval=2',
    'default_hooks.checkpoint.save_best=None',
    'default_hooks.logger.interval=1',
    'train_dataloader.batch_size=2', 'train_dataloader.sampler.batch_size=2',
    'val_dataloader.batch_size=2', 'val_dataloader.sampler.batch_size=2',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
    f'train_dataloader.dataset.pairs.0.dataset.pipeline.2.scale=[{SIZE},{SIZE}]',
    f'val_dataloader.dataset.pairs.0.dataset.pipeline.2.scale=[{SIZE},{SIZE}]',
]
# name -> (config, checkpoint interval): the frozen and locked states are read at iteration 1
RUNS = {
    'seg_full': (twin('phantom-organs-seg', 'full'), 2),
    'seg_frozen': (twin('phantom-organs-seg', 'frozen'), 1),
    'seg_lock-release': (twin('phantom-organs-seg', 'lock-release'), 1),
    'loc_lock-release': (twin('phantom-lesions-loc', 'lock-release'), 1),
    'fewshot': (FEWSHOT_TWIN, 2),
}
# runs tools/train.py once per argv list, in one process (one start-up of torch and mm*)
DRIVER = '''
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    sys.argv = argv
    runpy.run_path(argv[0], run_name='__main__')
'''


@pytest.fixture(scope='module')
def phantoms(tmp_path_factory):
    cwd = tmp_path_factory.mktemp('finetune')
    run_python(['-m', 'data_converters.synthetic', '--out', str(cwd / 'data' / 'phantoms'),
          '--num-train', '6', '--num-val', '2', '--num-test', '2', '--size', str(SIZE),
          '--datasets', 'phantom_seg', 'phantom_loc'], ROOT)
    return cwd


@pytest.fixture(scope='module')
def pretrained(phantoms):
    """A 'make demo' checkpoint: the demo's TeacherStudent, its teacher made different
    from its student so that loading the wrong copy shows."""
    demo = Config.fromfile(osp.join(ROOT, 'configs', 'foundation_x_demo.py'))
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = MODELS.build(demo.model)
        model.init_weights()
    state = {name: value + 1 if name.startswith('teacher.') and value.is_floating_point()
             else value for name, value in model.state_dict().items()}
    path = phantoms / 'demo.pth'
    torch.save(dict(meta={}, state_dict=state), path)
    student = {name[len('student.'):]: value for name, value in state.items()
               if name.startswith('student.')}
    return str(path), student


@pytest.fixture(scope='module')
def runs(phantoms, pretrained):
    ckpt, _ = pretrained
    argvs = [[osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', name,
              '--cfg-options', *TINY, f'default_hooks.checkpoint.interval={interval}',
              f'model.init_cfg.checkpoint={ckpt}', f'visualizer.name=vis_{name}']
             for name, (config, interval) in RUNS.items()]
    run_python(['-c', DRIVER, json.dumps(argvs)], phantoms)

    def result(name):
        work = phantoms / name
        log = ''.join(open(f).read() for f in glob.glob(str(work / '*' / '*.log')))
        ckpts = {it: torch.load(work / f'iter_{it}.pth', map_location='cpu')['state_dict']
                 for it in (1, 2) if (work / f'iter_{it}.pth').is_file()}
        metrics = json.loads((work / 'val_results' / 'results.json').read_text())
        return log, ckpts, metrics
    return {name: result(name) for name in RUNS}


# BatchNorm statistics are buffers: they follow the batches of a frozen module in train mode
# (the UperNet's BNs; docs/transfer.md), as in the lock phase of Foundation X
BN_BUFFERS = ('.running_mean', '.running_var', '.num_batches_tracked')


def _param_keys(reference, prefixes):
    keys = [k for k in reference if k.startswith(prefixes) and not k.endswith(BN_BUFFERS)]
    assert keys
    return keys


def _equal(state, reference, prefixes):
    """Whether every parameter under ``prefixes`` equals the reference exactly."""
    return all(torch.equal(state[k], reference[k]) for k in _param_keys(reference, prefixes))


def _max_change(state, reference, prefixes):
    return max((state[k] - reference[k]).abs().max().item()
               for k in _param_keys(reference, prefixes))


SEG_SHARED = ('backbone.', 'seg_neck.')
LOC_SHARED = ('backbone.', 'loc_head.neck.', 'loc_head.level_embed', 'loc_head.encoder.')
SEG_HEAD = 'seg_head.heads.phantom_organs.'


def test_runs_load_the_student_and_evaluate_the_new_head(runs):
    for name, (log, _, metrics) in runs.items():
        assert 'load student. in model from' in log, name
        # the pretraining heads are left out, the target's head is new
        assert 'unexpected key in source state_dict' in log
        if name.startswith('loc'):
            assert 'missing keys in source state_dict: loc_head.branches.phantom_lesions' in log
            assert 'phantom_lesions.loc/mAP40' in metrics
        else:
            assert f'missing keys in source state_dict: {SEG_HEAD}' in log
            assert 'phantom_organs.seg/Dice' in metrics


def test_full_fine_tuning_moves_the_loaded_backbone(runs, pretrained):
    _, student = pretrained
    _, ckpts, _ = runs['seg_full']
    # loaded (a random init would differ by ~1e-2), then moved by the 2 steps
    assert 0 < _max_change(ckpts[2], student, ('backbone.', )) < 1e-3
    assert 0 < _max_change(ckpts[2], student, ('seg_neck.', )) < 1e-3


def test_frozen_recipe_trains_the_head_only(runs, pretrained):
    _, student = pretrained
    log, ckpts, _ = runs['seg_frozen']
    assert 'lock phantom_organs.seg at iter 0' in log
    for it in (1, 2):
        assert _equal(ckpts[it], student, SEG_SHARED)
    assert not _equal(ckpts[2], ckpts[1], (SEG_HEAD, ))


@pytest.mark.parametrize('name,pair,shared', [
    ('seg_lock-release', 'phantom_organs.seg', SEG_SHARED),
    ('loc_lock-release', 'phantom_lesions.loc', LOC_SHARED)])
def test_lock_release_frees_the_shared_modules_after_the_lock(runs, pretrained, name, pair,
                                                               shared):
    _, student = pretrained
    log, ckpts, _ = runs[name]
    assert f'lock {pair} at iter 0' in log and f'release {pair} at iter 1' in log
    assert _equal(ckpts[1], student, shared)  # the locked first half of the 2 iterations
    assert not _equal(ckpts[2], student, ('backbone.', ))


def test_fewshot_twin_trains_on_the_seeded_subset(runs, phantoms):
    log, _, metrics = runs['fewshot']
    train = json.loads((phantoms / 'data' / 'phantoms' / 'phantom_seg' / 'annotations'
                        / 'train.json').read_text())['data_list']
    patients = sorted(train[i]['patient_id'] for i in few_shot_indices(train, 3, 0))
    assert f'few-shot subset (seed 0): 3 of 6 images, 3 patients: {", ".join(patients)}' in log
    assert 'phantom_organs.seg/Dice' in metrics


def test_fewshot_seed_on_the_command_line_changes_the_images(phantoms, monkeypatch):
    monkeypatch.chdir(phantoms)  # the twin's data root is relative, as after `make phantoms`

    def images(seed):
        cfg = Config.fromfile(FEWSHOT_TWIN)
        cfg.merge_from_dict(dict(zip(SHOT_KEYS, (3, seed))))
        dataset = DATASETS.build(cfg.train_dataloader.dataset).datasets[0]
        return sorted(dataset.get_data_info(i)['img_path'] for i in range(len(dataset)))

    first = images(0)
    assert len(first) == 3 and images(0) == first
    assert images(1) != first
