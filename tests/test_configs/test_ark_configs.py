"""configs/ark.py and configs/ark_demo.py: the Ark-6 recipe's values (pairs and their order,
projector, schedules, label policies, ten-crop test), its model built at full size, its
learning-rate curve, and the demo trained through tools/train.py on tiny phantoms, tested
through tools/test.py (the teacher) and with the ten-crop wrapper as ``--tta`` builds it."""
import argparse
import json
import re
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

import fxmm.engine.hooks.teacher_ema_hook  # noqa: F401  registers TeacherEMAHook
import fxmm.engine.runner.teacher_student_val_loop  # noqa: F401
import fxmm.models.teacher_student  # noqa: F401
import fxmm.models.tta.ten_crop  # noqa: F401  registers TenCropTTA
from fxmm.registry import MODELS, PARAM_SCHEDULERS
from fxmm.utils.schedules import build_schedule
# the Swin formula of the FoundationX tests (tests/ is on sys.path: its conftest.py)
from test_models.test_foundation_x import swin_param_count
from fxmm.testing.cli import run_python

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ARK = osp.join(ROOT, 'configs', 'ark.py')
DEMO = osp.join(ROOT, 'configs', 'ark_demo.py')

# method.md section 2 / datasets.md "Ark class lists": Ark-6 in the authors' order
ARK_CLASSES = dict(mimic_cxr=14, chexpert=14, chestxray14=14, rsna_pneumonia=3, vindr_cxr=6,
                   shenzhen=1)
CHEXPERT_COMPETITION = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                        'Pleural Effusion']


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(ARK)


def test_ark_config_states_the_recipe(cfg):
    student = cfg.model.model
    # the six datasets, cls only, in the fixed order, one full pass per visit
    assert {n: len(c.cls_classes) for n, c in student.datasets.items()} == ARK_CLASSES
    assert list(student.datasets) == list(ARK_CLASSES)
    assert all(set(classes) == {'cls_classes'} for classes in student.datasets.values())
    for split in ('train', 'val', 'test'):
        pairs = cfg[f'{split}_dataloader'].dataset.pairs
        assert [p.task for p in pairs] == ['cls'] * 6
        assert [p.dataset.data_root for p in pairs] == [
            cfg.data_root + cfg[f'{name}_data'].folder for name in ARK_CLASSES]
    sampler = cfg.train_dataloader.sampler
    assert (sampler.type, sampler.mode, sampler.iters_per_visit) == (
        'MultiTaskSampler', 'cyclic', None)
    assert (cfg.train_cfg.type, cfg.train_cfg.max_visits) == ('CyclicTrainLoop', 200 * 6)
    # Swin-B 224 with the 1024 -> 1376 projector before the per-dataset heads
    backbone = student.backbone
    assert (backbone.arch, backbone.img_size, backbone.window_size, backbone.out_indices) == (
        'base', 224, 7, (3, ))
    assert 'swin_base_patch4_window7_224_22kto1k' in backbone.init_cfg.checkpoint
    assert (student.cls_head.in_channels, student.cls_head.projector_dims) == (1024, 1376)
    # (1 - c) * BCE + c * MSE, c cosine 0 -> 0.5; EMA m cosine 0.9 -> 1 after every visit;
    # the teacher is what predict (the test) runs
    assert (cfg.model.type, cfg.model.consistency_mode, cfg.model.predict_on) == (
        'TeacherStudent', 'ark', 'teacher')
    weight = build_schedule(cfg.model.consistency_weight, 'c')
    assert [weight(p) for p in (0., .5, 1.)] == pytest.approx([0., .25, .5])
    ema = {h.type: h for h in cfg.custom_hooks}['TeacherEMAHook']
    momentum = build_schedule(ema.momentum, 'm')
    assert ema.interval == 'visit'
    assert [momentum(p) for p in (0., .5, 1.)] == pytest.approx([.9, .95, 1.])
    assert 'LockReleaseHook' not in {h.type for h in cfg.custom_hooks}
    assert cfg.val_cfg.type == 'TeacherStudentValLoop'
    # label policies: CheXpert LSR (U(0.55, 0.85)) with blank -> 0 in training, MIMIC U-ones
    # with blank -> 0 everywhere, the others as converted
    policies = {split: {p.dataset.data_root.split('/')[-2]: p.dataset.get('label_policy')
                        for p in cfg[f'{split}_dataloader'].dataset.pairs}
                for split in ('train', 'test')}
    lsr, ones = dict(type='lsr', missing_as_zero=True), dict(type='ones', missing_as_zero=True)
    assert policies['train'] == {'mimic-cxr-jpg': ones, 'CheXpert-v1.0-small': lsr, 'CXR8': None,
                                 'rsna-pneumonia-detection-challenge': None, 'vindr-cxr': None,
                                 'ChinaSet_AllFiles': None}
    assert policies['test']['mimic-cxr-jpg'] == ones
    # val (from train.csv) counts blank as 0, as training does; uncertain stays out of the AUC
    assert policies['test']['CheXpert-v1.0-small'] == dict(type='ignore', missing_as_zero=True)
    assert cfg.test_evaluator.auc_classes == dict(chexpert=CHEXPERT_COMPETITION)
    # ten crops of 224 from the 256 x 256 test images; validation on the 224 centre crop
    assert (cfg.tta_model.type, cfg.tta_model.crop_size, cfg.tta_model.flip) == (
        'TenCropTTA', 224, True)
    test_pipeline = cfg.test_dataloader.dataset.pairs[0].dataset.pipeline
    assert [t.type for t in test_pipeline][-2:] == ['CXRResize', 'PackCXRInputs']
    assert test_pipeline[-2].scale == (256, 256)
    val_pipeline = cfg.val_dataloader.dataset.pairs[0].dataset.pipeline
    assert [(t.type, t.get('scale', t.get('crop_size'))) for t in val_pipeline[2:4]] == [
        ('CXRResize', (256, 256)), ('mmcv.CenterCrop', 224)]
    # the authors' optimiser: timm 'sgd' = SGD with Nesterov momentum 0.9, lr 0.3, no decay,
    # batch 200
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.nesterov,
            optimizer.weight_decay) == ('SGD', 0.3, 0.9, True, 0.)
    assert cfg.auto_scale_lr.base_batch_size == 200
    assert cfg.train_dataloader.batch_size == cfg.train_dataloader.sampler.batch_size


def test_ark_learning_rate_warms_up_over_20_epochs_then_cosine_to_min_lr(cfg):
    """The config's schedulers over 200 epochs of 10 iterations each (an epoch is a cycle)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=cfg.optim_wrapper.optimizer.lr)
    epoch_length = 10
    schedulers = [PARAM_SCHEDULERS.get(s.type).build_iter_from_epoch(
        optimizer, **{k: v for k, v in s.items() if k not in ('type', 'convert_to_iter_based',
                                                                'by_epoch')},
        epoch_length=epoch_length) for s in cfg.param_scheduler]
    lrs = []
    for _ in range(200 * epoch_length):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    # (mmengine's linear warm-up reaches its end one iteration early: 1 % here)
    assert lrs[0] == pytest.approx(1e-6)
    assert lrs[10 * epoch_length] == pytest.approx(1e-6 + (0.3 - 1e-6) / 2, rel=0.01)
    assert lrs[20 * epoch_length] == pytest.approx(0.3)
    assert max(lrs) == pytest.approx(0.3)
    assert lrs[110 * epoch_length] == pytest.approx(1e-5 + (0.3 - 1e-5) / 2, rel=0.01)
    assert lrs[-1] == pytest.approx(1e-5, rel=0.05)  # one iteration before the end


def test_ark_model_builds_at_full_size(cfg):
    with torch.random.fork_rng():
        model = MODELS.build(cfg.model)  # no init_weights: the ImageNet weights stay remote
    student = model.student
    # Swin-B with one output LayerNorm (stage 4), as timm's and the authors'
    swin_b = swin_param_count(128, (2, 2, 18, 2), (4, 8, 16, 32)) - 2 * (128 + 256 + 512)
    heads = 1024 * 1376 + 1376 + sum(1376 * n + n for n in ARK_CLASSES.values())
    assert sum(p.numel() for p in student.backbone.parameters()) == swin_b == 86_743_224
    assert sum(p.numel() for p in student.cls_head.parameters()) == heads
    assert sum(p.numel() for p in student.parameters()) == swin_b + heads
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert (student.with_loc, student.with_seg) == (False, False)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    in_optimizer = {id(p) for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    assert in_optimizer == {id(p) for p in student.parameters()}
    # the test-time wrapper takes the built model as it is
    tta = MODELS.build(dict(cfg.tta_model, module=model))
    assert tta.module is model and tta.num_views == 10 and tta.crop_size == (224, 224)
    assert tta.unmirror_index('chexpert') is None  # no Ark class names a side


# ----- the demo, end to end -----

# one cycle over the 4 phantom datasets: 4 train images at batch 2 = 2 iterations per visit;
# a narrower Swin (16 channels, the demo's 48) for speed
TINY = [
    'model.model.backbone.arch.embed_dims=16', 'model.model.cls_head.in_channels=128',
    'model.model.cls_head.projector_dims=32',
    'train_cfg.max_visits=4', 'train_cfg.val_interval=8', 'default_hooks.checkpoint.interval=8',
    'train_dataloader.batch_size=2', 'train_dataloader.sampler.batch_size=2',
    'val_dataloader.batch_size=4', 'val_dataloader.sampler.batch_size=4',
    'test_dataloader.batch_size=4', 'test_dataloader.sampler.batch_size=4',
    'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
    'default_hooks.logger.interval=2',
    # the demo trains on a 160-image subset of each split; these splits hold 4 images
    *(f'train_dataloader.dataset.pairs.{i}.dataset.num_samples=4' for i in range(4)),
]
PHANTOMS = ('phantom_cls', 'phantom_loc', 'phantom_seg', 'phantom_ptx')


def cfg_options(args):
    """``--cfg-options`` values parsed as tools/train.py and tools/test.py parse them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *args]).cfg_options



@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp('ark_demo')
    run_python(['-m', 'data_converters.synthetic', '--out', str(cwd / 'data' / 'phantoms'),
          '--num-train', '4', '--num-val', '4', '--num-test', '4', '--size', '64'], ROOT)
    log = run_python([osp.join(ROOT, 'tools', 'train.py'), DEMO, '--work-dir', 'work',
                '--cfg-options', *TINY], cwd)
    return cwd, log


def test_demo_trains_every_cls_pair_in_turn_and_evaluates_both_copies(trained):
    cwd, log = trained
    # one full pass (2 iterations) per dataset, in the fixed order, cls only
    visits = [f'visit {k}: pair {name}.cls (2 iters)' for k, name in enumerate(PHANTOMS)]
    assert re.findall(r'visit \d+: pair \S+ \(\d+ iters\)', log) == visits
    assert 'teacher_momentum: 0.9' in log and 'consistency_weight: 0.0' in log
    val = json.loads((cwd / 'work' / 'val_results' / 'results.json').read_text())
    for side in ('student', 'teacher'):
        for name in PHANTOMS:
            assert f'{side}/{name}.cls/AUC' in json.dumps(val)
    assert 'is better' in log
    assert list((cwd / 'work').glob('best_teacher_score_iter_8.pth'))


def test_demo_test_evaluates_the_teacher(trained):
    cwd, _ = trained
    ckpt = (cwd / 'work' / 'last_checkpoint').read_text().strip()
    log = run_python([osp.join(ROOT, 'tools', 'test.py'), DEMO, ckpt, '--work-dir', 'test',
                '--cfg-options', *TINY], cwd)
    assert 'test results' in log
    table = (cwd / 'test' / 'test_results' / 'results.md').read_text()
    assert all(f'| {name} |' in table for name in PHANTOMS)
    assert Config.fromfile(DEMO).model.predict_on == 'teacher'


def test_demo_test_with_ten_crops_runs_the_teachers_ten_views(trained, monkeypatch):
    """What ``tools/test.py --tta`` does (mmdet's convention): the config's ``tta_model``
    wraps its model, and the training checkpoint loads into it."""
    cwd, _ = trained
    monkeypatch.chdir(cwd)
    ckpt = (cwd / 'work' / 'last_checkpoint').read_text().strip()
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(cfg_options(TINY))
    # smaller test images for speed: crops of 64 from 80 x 80
    for pair in cfg.test_dataloader.dataset.pairs:
        assert pair.dataset.pipeline[2].type == 'CXRResize'
        pair.dataset.pipeline[2].scale = (80, 80)
    cfg.tta_model.crop_size = 64
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.work_dir, cfg.load_from = str(cwd / 'tta'), ckpt
    runner = Runner.from_cfg(cfg)
    calls = dict(teacher=[], student=[])
    for side, shapes in calls.items():
        getattr(runner.model.module, side).backbone.register_forward_pre_hook(
            lambda module, args, shapes=shapes: shapes.append(tuple(args[0].shape)))
    metrics = runner.test()
    # 4 test batches (one per dataset) x 10 crops
    assert calls == dict(teacher=[(4, 3, 64, 64)] * 40, student=[])
    assert all(f'{name}.cls/AUC' in metrics for name in PHANTOMS)
    # the checkpoint's copies are in the wrapped model
    state = _load_checkpoint(ckpt, map_location='cpu')['state_dict']
    teacher = runner.model.module.teacher.state_dict()
    assert all(torch.equal(teacher[k[len('teacher.'):]], v)
               for k, v in state.items() if k.startswith('teacher.'))
    weight = 'backbone.patch_embed.projection.weight'
    assert not torch.equal(state['teacher.' + weight], state['student.' + weight])



def test_demo_trains_a_fixed_subset_and_evaluates_whole_splits():
    """One Ark pass over 160 of each split's images (20 iterations at batch 8), whatever the
    size of the phantom train split; val and test use every image."""
    cfg = Config.fromfile(DEMO)
    assert [p.dataset.num_samples for p in cfg.train_dataloader.dataset.pairs] == [160] * 4
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert all(p.dataset.get('num_samples') is None for p in loader.dataset.pairs)
