"""Config inheritance: every config under configs/ loads, passes the start-up checks of
tools/train.py and builds its model; the single-task baselines and the demo override what
they should and share the rest with configs/foundation_x.py."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from fxmm.engine.config_checks import check_config
from fxmm.registry import MODELS
from fxmm.structures import CLASS_KEYS

CONFIG_DIR = osp.normpath(osp.join(osp.dirname(__file__), '..', '..', 'configs'))
# built (2 x 165M parameters) and trained in test_foundation_x_config.py
BUILT_ELSEWHERE = ('foundation_x.py', )
# method.md section 3: the single-task baselines the paper compares (values in brackets)
PAPER_BASELINES = {
    'chexpert.cls', 'chestxray14.cls', 'vindr_cxr.cls', 'shenzhen.cls', 'mimic_cxr.cls',
    'tbx11k.loc', 'node21.loc', 'candid_ptx.loc', 'rsna_pneumonia.loc', 'chestx_det.loc',
    'siim.loc', 'candid_ptx.seg', 'chestx_det.seg', 'siim.seg'}
TASK_HEADS = dict(cls=('cls_head', ), loc=('loc_head', ), seg=('seg_neck', 'seg_head'))
BASELINE_PREFIX = 'fx-single_swin-b_'


def configs():
    """Every config file below configs/ outside a `_base_` folder, relative to configs/."""
    paths = glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True)
    names = [osp.relpath(path, CONFIG_DIR) for path in paths]
    return sorted(name for name in names if '_base_' not in name.split(osp.sep))


def baselines():
    return [name for name in configs() if name.startswith(f'baselines{osp.sep}')]


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


@pytest.fixture(scope='module')
def full():
    return load('foundation_x.py')


def baseline_pair(name):
    """'baselines/fx-single_swin-b_rsna-pneumonia-loc.py' -> ('rsna_pneumonia', 'loc')."""
    stem = osp.splitext(osp.basename(name))[0]
    assert stem.startswith(BASELINE_PREFIX), name
    dataset, task = stem[len(BASELINE_PREFIX):].rsplit('-', 1)
    return dataset.replace('-', '_'), task


def test_the_configs_are_found():
    names = configs()
    assert {'foundation_x.py', 'foundation_x_demo.py'} <= set(names)
    assert len(baselines()) == len(PAPER_BASELINES)


@pytest.mark.parametrize('name', configs())
def test_every_config_loads_and_passes_the_start_up_checks(name):
    cfg = load(name)
    assert cfg.default_scope == 'fxmm'
    check_config(cfg)  # raises on a mistyped key or a wrong module argument


@pytest.mark.parametrize('name', [n for n in configs() if n not in BUILT_ELSEWHERE])
def test_every_model_builds(name):
    cfg = load(name)
    model = MODELS.build(cfg.model)
    student = getattr(model, 'student', model)
    assert type(student).__name__ == 'FoundationX'
    # a task's modules are built iff a dataset has the task
    for task, heads in TASK_HEADS.items():
        for head in heads:
            assert (getattr(student, head) is not None) == bool(student.task_datasets[task])
    if name.startswith(f'baselines{osp.sep}'):
        dataset, task = baseline_pair(name)
        assert student.task_datasets == {t: [dataset] if t == task else [] for t in TASK_HEADS}
    elif name.startswith(f'finetune{osp.sep}'):  # one target pair: its task's head only
        task = re.search(r'-(loc|seg)(-fewshot)?_', osp.basename(name)).group(1)
        assert [t for t in TASK_HEADS if student.task_datasets[t]] == [task]


def test_the_baselines_are_the_papers_single_task_comparisons():
    pairs = {'.'.join(baseline_pair(name)) for name in baselines()}
    assert pairs == PAPER_BASELINES


@pytest.mark.parametrize('name', baselines())
def test_a_baseline_is_the_full_config_reduced_to_its_pair(name, full):
    cfg = load(name)
    dataset, task = baseline_pair(name)
    full_pairs = [(full[var].name, t) for var, t in full.fx_pairs]
    index = full_pairs.index((dataset, task))
    student = full.model.model

    # the plain FoundationX of the full config, with one dataset's classes of one task
    # (test_every_model_builds: only that task's head is built)
    assert cfg.model.type == student.type == 'FoundationX'
    key = CLASS_KEYS[task]
    assert list(cfg.model.datasets) == [dataset] and cfg.model.datasets[dataset].tasks == [task]
    assert cfg.model.datasets[dataset][key] == student.datasets[dataset][key]
    for head in ('cls_head', 'loc_head', 'seg_neck', 'seg_head'):
        assert cfg.model[head] == student[head]
    assert cfg.model.backbone == student.backbone
    assert cfg.model.data_preprocessor == student.data_preprocessor

    # that pair's splits, loaded as in the full config
    for split in ('train', 'val', 'test'):
        loader, full_loader = cfg[f'{split}_dataloader'], full[f'{split}_dataloader']
        assert loader.dataset.pairs == [full_loader.dataset.pairs[index]]
        assert loader.dataset.pairs[0].task == task
        assert {k: v for k, v in loader.items() if k != 'dataset'} == {
            k: v for k, v in full_loader.items() if k != 'dataset'}

    # the same optimiser and (cycle-based) schedule, as many passes as FX makes per pair
    assert cfg.optim_wrapper == full.optim_wrapper
    assert cfg.param_scheduler == full.param_scheduler
    assert cfg.train_cfg == dict(full.train_cfg, max_visits=full.max_visits // len(full_pairs))
    assert cfg.train_cfg.max_visits == 150
    # trained alone: no teacher, no Lock-Release
    assert [hook.type for hook in cfg.custom_hooks] == ['ResultsTableHook']
    assert (cfg.val_cfg.type, cfg.test_cfg.type) == ('ValLoop', 'TestLoop')
    assert cfg.default_hooks.checkpoint.save_best == 'score'


def test_the_demo_is_the_full_method_at_tiny_size(full):
    demo = load('foundation_x_demo.py')
    # the same modules ...
    assert demo.model.type == full.model.type == 'TeacherStudent'
    for part in ('backbone', 'cls_head', 'loc_head', 'seg_neck', 'seg_head',
                 'data_preprocessor'):
        assert demo.model.model[part].type == full.model.model[part].type
    for key in ('train_cfg', 'val_cfg', 'test_cfg'):
        assert demo[key].type == full[key].type
    assert [h.type for h in demo.custom_hooks] == [h.type for h in full.custom_hooks]
    for hook, full_hook in zip(demo.custom_hooks, full.custom_hooks):
        assert {k: v for k, v in hook.items() if k != 'type'} == {
            k: v for k, v in full_hook.items() if k != 'type'}
    assert demo.model.consistency_weight == full.model.consistency_weight
    assert demo.optim_wrapper.constructor == full.optim_wrapper.constructor
    assert demo.optim_wrapper.optimizer.type == full.optim_wrapper.optimizer.type
    assert demo.train_dataloader.sampler.mode == full.train_dataloader.sampler.mode
    # ... at tiny sizes, on the phantoms
    assert demo.model.model.backbone.arch['embed_dims'] == 48
    assert full.model.model.backbone.arch == 'base'
    assert demo.model.model.loc_head.num_queries < full.model.model.loc_head.num_queries
    assert demo.model.model.seg_neck.channels < full.model.model.seg_neck.channels
    assert set(demo.model.model.datasets) == {'phantom_cls', 'phantom_loc', 'phantom_seg',
                                              'phantom_ptx'}
    assert all(pair.dataset.data_root.startswith(demo.phantom_root)
               for pair in demo.train_dataloader.dataset.pairs)
