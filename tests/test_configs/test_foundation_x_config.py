"""configs/foundation_x.py, the paper's model: its numbers, the full-size model against a hand
count of its parameters, one training step of each task on 224 px images with its optimiser
and hooks, and its visit-based learning-rate schedule.

The heaviest test file of the suite (CPU, 2 threads): the full TeacherStudent (2 x 165M
parameters) is built once per module.
"""
import math
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from fxmm.datasets.samplers.multi_task_sampler import MultiTaskSampler, VisitInfo
from fxmm.registry import HOOKS, MODELS, PARAM_SCHEDULERS
from fxmm.structures import CLASS_KEYS
from fxmm.testing import demo_cxr_inputs
# the Swin formula of the FoundationX tests (tests/ is on sys.path: its conftest.py)
from test_models.test_foundation_x import swin_param_count

CONFIG = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'foundation_x.py')
# method.md section 1: the 20 (dataset, task) pairs of the paper
LOC_DATASETS = {'tbx11k', 'node21', 'candid_ptx', 'rsna_pneumonia', 'chestx_det', 'siim'}
SEG_DATASETS = {'candid_ptx', 'chestx_det', 'siim'}
CLS_DATASETS = LOC_DATASETS | {'chexpert', 'chestxray14', 'vindr_cxr', 'shenzhen', 'mimic_cxr'}
# the student of the paper's config, counted by hand below (test of the count)
FX_STUDENT_PARAMS = 165_005_250


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(CONFIG)


@pytest.fixture(scope='module')
def built(cfg):
    """The config's TeacherStudent, initialised (uninitialised ``torch.empty`` parameters such as
    DINO's ``level_embed`` could hold anything), and its optimiser wrapper."""
    with DefaultScope.overwrite_default_scope('fxmm'), torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train()
    return model, optim_wrapper


def pair_names(cfg):
    return [(cfg[var].name, task) for var, task in cfg.fx_pairs]


def test_config_states_the_papers_settings(cfg):
    pairs = pair_names(cfg)
    assert len(pairs) == len(set(pairs)) == 20
    tasks = {task: {name for name, t in pairs if t == task} for task in ('cls', 'loc', 'seg')}
    assert tasks == dict(cls=CLS_DATASETS, loc=LOC_DATASETS, seg=SEG_DATASETS)
    student = cfg.model.model
    # the heads follow the pairs (no DINO branch for VinDr-CXR / ChestX-ray14: cls only),
    # with the class lists of the dataset configs
    assert {name: {CLASS_KEYS[t]: entry[CLASS_KEYS[t]] for t in entry.tasks}
            for name, entry in student.datasets.items()} == {
        cfg[var].name: {CLASS_KEYS[t]: cfg[var][CLASS_KEYS[t]]
                        for other, t in cfg.fx_pairs if other == var}
        for var, _ in cfg.fx_pairs}
    assert student.datasets.vindr_cxr.tasks == ['cls'] and cfg.vindr_cxr_data.det_classes
    assert student.datasets.siim.tasks == ['cls', 'loc', 'seg']
    for split in ('train', 'val', 'test'):
        split_pairs = cfg[f'{split}_dataloader'].dataset.pairs
        assert [p.task for p in split_pairs] == [task for _, task in pairs]
        assert all(p.dataset.data_root.startswith(cfg.data_root) for p in split_pairs)

    assert cfg.model.type == 'TeacherStudent' and student.type == 'FoundationX'
    assert (cfg.model.consistency_weight, cfg.model.consistency_mode) == (0.5, 'add')
    backbone = student.backbone
    assert (backbone.arch, backbone.img_size, backbone.window_size, backbone.drop_path_rate,
            backbone.pad_small_map) == ('base', 224, 7, 0.2, False)
    loc = student.loc_head
    assert (loc.num_queries, loc.dn_cfg.group_cfg.num_dn_queries, loc.num_feature_levels,
            loc.encoder.num_layers, loc.decoder.num_layers) == (900, 100, 4, 6, 6)
    assert student.seg_neck.channels == 128

    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 1e-4)
    backbone_lr = optimizer.lr * cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult
    assert backbone_lr == pytest.approx(1e-5)
    loader = cfg.train_dataloader
    assert loader.batch_size == loader.sampler.batch_size == cfg.auto_scale_lr.base_batch_size
    assert loader.batch_size == 24 and loader.sampler.mode == 'cyclic'
    assert (cfg.train_cfg.type, cfg.train_cfg.max_visits) == ('CyclicTrainLoop', 3000)
    assert cfg.val_cfg.type == 'TeacherStudentValLoop'
    hooks = {hook.type: hook for hook in cfg.custom_hooks}
    assert (hooks['LockReleaseHook'].lock_tasks, hooks['LockReleaseHook'].lock_fraction) == (
        ('loc', 'seg'), 0.5)
    assert (hooks['TeacherEMAHook'].momentum, hooks['TeacherEMAHook'].interval) == (0.8, 'visit')
    # CheXpert and MIMIC-CXR AUCs on the 5 competition classes, the others on all classes
    competition = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion']
    assert cfg.test_evaluator == cfg.val_evaluator
    assert cfg.test_evaluator.auc_classes == dict(chexpert=competition, mimic_cxr=competition)
    assert set(competition) <= set(cfg.chexpert_data.cls_classes) & set(
        cfg.mimic_cxr_data.cls_classes)


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def conv_norm(n_in, n_out, kernel):
    """mmcv ConvModule with a norm layer: conv without bias + norm weight and bias."""
    return n_in * n_out * kernel * kernel + 2 * n_out


def dino_counts(loc, dataset_classes):
    """Parameters of SharedDINO by formula: (shared part, {dataset: branch}).

    Deformable attention (mmcv): sampling offsets Linear(d, h*l*p*2), attention weights
    Linear(d, h*l*p), value and output projections Linear(d, d). Encoder layer: that + FFN
    d -> f -> d + 2 LayerNorms. Decoder layer: multi-head self-attention (in_proj 3d^2 + 3d,
    out_proj d^2 + d) + deformable cross-attention + FFN + 3 LayerNorms; the decoder adds
    ref_point_head MLP(2d -> d -> d) and a final LayerNorm.
    Shared: ChannelMapper 1x1 conv + GN per stage, a stride-2 3x3 conv + GN on the last stage
    for the extra level, level_embed (levels, d), encoder layers.
    Branch: decoder, query_embedding (Q, d), memory_trans_fc Linear(d, d) + LayerNorm, the
    de-noising label embedding (C, d), and num_layers + 1 unshared heads: class Linear(d, C)
    and box MLP d -> d -> d -> 4.
    """
    d, levels = loc.embed_dims, loc.num_feature_levels
    enc_attn, dec_attn = loc.encoder.layer_cfg.self_attn_cfg, loc.decoder.layer_cfg.cross_attn_cfg

    def deformable(attn):
        samples = attn.num_heads * levels * attn.num_points
        return linear(d, samples * 2) + linear(d, samples) + 2 * linear(d, d)

    def ffn(layer):
        f = layer.ffn_cfg.feedforward_channels
        return linear(d, f) + linear(f, d)

    encoder_layer = deformable(enc_attn) + ffn(loc.encoder.layer_cfg) + 2 * 2 * d
    decoder_layer = (linear(d, 3 * d) + linear(d, d) + deformable(dec_attn)
                     + ffn(loc.decoder.layer_cfg) + 3 * 2 * d)
    shared = (sum(conv_norm(c, d, 1) for c in loc.in_channels)
              + conv_norm(loc.in_channels[-1], d, 3) * (levels - len(loc.in_channels))
              + levels * d + loc.encoder.num_layers * encoder_layer)
    num_layers = loc.decoder.num_layers
    decoder = num_layers * decoder_layer + linear(2 * d, d) + linear(d, d) + 2 * d

    def branch(num_classes):
        queries = loc.num_queries * d + linear(d, d) + 2 * d + num_classes * d
        heads = (num_layers + 1) * (linear(d, num_classes) + 2 * linear(d, d) + linear(d, 4))
        return decoder + queries + heads

    return shared, {name: branch(n) for name, n in dataset_classes.items()}


def upernet_count(neck):
    """mmseg UPerHead without its classifier: PSP 1x1 convs on the last stage, the 3x3
    bottleneck over [last stage, pooled maps], 1x1 laterals and 3x3 FPN convs of the other
    stages, and the 3x3 fusion of all levels; every conv + BN."""
    c, stages = neck.channels, neck.in_channels
    return (len(neck.pool_scales) * conv_norm(stages[-1], c, 1)
            + conv_norm(stages[-1] + len(neck.pool_scales) * c, c, 3)
            + sum(conv_norm(s, c, 1) + conv_norm(c, c, 3) for s in stages[:-1])
            + conv_norm(len(stages) * c, c, 3))


def test_full_model_has_the_hand_counted_parameters(cfg, built):
    model, _ = built
    student_cfg = cfg.model.model
    # the class lists of the tasks each dataset has heads for
    classes = {key: {name: len(entry[key]) for name, entry in student_cfg.datasets.items()
                     if task in entry.tasks}
               for task, key in CLASS_KEYS.items()}
    dino_shared, dino_branches = dino_counts(student_cfg.loc_head, classes['det_classes'])
    seg_channels = student_cfg.seg_head.in_channels
    expected = {
        'backbone': swin_param_count(128, (2, 2, 18, 2), (4, 8, 16, 32), window=7),
        'cls_head': sum(linear(1024, n) for n in classes['cls_classes'].values()),
        'loc_head (shared)': dino_shared,
        **{f'loc_head.branches.{name}': n for name, n in dino_branches.items()},
        'seg_neck': upernet_count(student_cfg.seg_neck),
        'seg_head': sum(linear(seg_channels, n) for n in classes['seg_classes'].values()),
    }
    student = model.student
    parts = {
        'backbone': student.backbone, 'cls_head': student.cls_head,
        'loc_head (shared)': [p for n, p in student.loc_head.named_parameters()
                              if not n.startswith('branches.')],
        **{f'loc_head.branches.{name}': branch
           for name, branch in student.loc_head.branches.items()},
        'seg_neck': student.seg_neck, 'seg_head': student.seg_head,
    }
    counted = {part: sum(p.numel() for p in (m.parameters() if isinstance(m, torch.nn.Module)
                                             else m))
               for part, m in parts.items()}
    lines = [f'{part:34s} {counted[part]:>12,d}' for part in parts]
    total = sum(p.numel() for p in student.parameters())
    print('\nFoundation X (configs/foundation_x.py), student parameters:\n' + '\n'.join(lines)
          + f'\n{"total":34s} {total:>12,d} (+ the same again in the EMA teacher)')
    assert counted == expected
    assert total == sum(expected.values()) == FX_STUDENT_PARAMS
    # the teacher is a full frozen copy; only the student trains and is in the optimiser
    assert sum(p.numel() for p in model.parameters()) == 2 * FX_STUDENT_PARAMS
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == FX_STUDENT_PARAMS
    optimised = {id(p) for group in built[1].optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in student.parameters()}


def train_step(model, optim_wrapper, task, dataset, **num_classes):
    """One ``train_step`` (loss, backward, clipped AdamW step) on a batch of two 224 px
    images.

    Returns:
        tuple: the log vars, the names of the student parameters that had a gradient at the
        optimiser step, and the names of those the step changed.
    """
    data = demo_cxr_inputs(2, 224, task, dataset, seed=1, **num_classes)
    before = {name: p.detach().clone() for name, p in model.student.named_parameters()}
    with_grad, teacher_grads = set(), []

    def record_grads(optimizer, args, kwargs):
        with_grad.update(name for name, p in model.student.named_parameters()
                         if p.grad is not None)
        teacher_grads.extend(p for p in model.teacher.parameters() if p.grad is not None)

    handle = optim_wrapper.optimizer.register_step_pre_hook(record_grads)
    # seeded: Swin's stochastic depth drops a block for both images now and then, and a block
    # dropped for the whole batch has no gradient (DINO's de-noising queries draw too)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            log_vars = model.train_step(data, optim_wrapper)
    finally:
        handle.remove()
    changed = {name for name, p in model.student.named_parameters()
               if not torch.equal(p, before[name])}
    assert with_grad and not teacher_grads
    # AdamW skips parameters without a gradient (no weight decay either)
    assert changed <= with_grad
    return log_vars, with_grad, changed


def assert_finite_losses(log_vars, prefix, names):
    """Only the batch pair's losses (``names`` among them) plus the total; all finite, the
    total and the student-teacher consistency term positive."""
    values = {key: float(value.detach()) for key, value in log_vars.items()}
    assert all(key == 'loss' or key.startswith(prefix) for key in values), sorted(values)
    assert {f'{prefix}{name}' for name in names} <= set(values)
    assert all(math.isfinite(v) for v in values.values()), values
    assert values['loss'] > 0 and values[f'{prefix}loss_consistency'] > 0


def params_under(model, *prefixes):
    return {name for name, _ in model.student.named_parameters()
            if any(name == p or name.startswith(p + '.') for p in prefixes)}


def test_cls_step_trains_the_backbone_and_its_dataset_head_only(built):
    model, optim_wrapper = built
    log_vars, with_grad, changed = train_step(model, optim_wrapper, 'cls', 'chexpert',
                                              num_cls=14)
    assert_finite_losses(log_vars, 'chexpert.cls.', ['loss_cls'])
    head = params_under(model, 'cls_head.heads.chexpert')
    # the pooled last stage needs every block (and its output norm only)
    assert with_grad == head | (params_under(model, 'backbone')
                                - params_under(model, 'backbone.norm0', 'backbone.norm1',
                                               'backbone.norm2'))
    assert head | params_under(model, 'backbone.stages.3') <= changed


def test_loc_step_trains_the_shared_dino_and_its_dataset_branch(built):
    model, optim_wrapper = built
    log_vars, with_grad, changed = train_step(model, optim_wrapper, 'loc', 'tbx11k',
                                              num_det=3)
    assert_finite_losses(log_vars, 'tbx11k.loc.',
                         ['loss_cls', 'loss_bbox', 'loss_iou', 'enc_loss_cls', 'dn_loss_cls'])
    # every parameter of the shared part and of the dataset's branch, none of the others
    dino = params_under(model, 'loc_head.neck', 'loc_head.level_embed', 'loc_head.encoder',
                        'loc_head.branches.tbx11k')
    # DINO reads stages 2-4 (strides 8-32): stage 1's output norm is unused
    assert with_grad == dino | (params_under(model, 'backbone')
                                - params_under(model, 'backbone.norm0'))
    assert params_under(model, 'loc_head.encoder', 'backbone.stages.3') <= changed


def test_seg_steps_under_the_configs_lock_release_and_teacher_hooks(cfg, built):
    """A seg visit of two iterations: the first locked (backbone and UperNet frozen: only the
    dataset's seg head moves), the second released; then the visit-end EMA with m = 0.8."""
    model, optim_wrapper = built
    hooks = {cfg_hook.type: HOOKS.build(cfg_hook) for cfg_hook in cfg.custom_hooks}
    lock, ema = hooks['LockReleaseHook'], hooks['TeacherEMAHook']
    runner = SimpleNamespace(model=model, optim_wrapper=optim_wrapper, iter=0,
                             logger=MMLogger.get_current_instance(),
                             train_loop=SimpleNamespace(current_visit=None, sampler=None))
    ema.before_train(runner)  # iteration 0: the teacher becomes a copy of the student
    lock.before_train(runner)
    teacher_start = model.teacher.seg_head.heads.chestx_det[0].weight.clone()

    head = params_under(model, 'seg_head.heads.chestx_det')
    shared = params_under(model, 'backbone', 'seg_neck')
    for iter_in_visit in (0, 1):
        runner.iter = iter_in_visit
        runner.train_loop.current_visit = VisitInfo(16, 16, 'chestx_det.seg', 'seg',
                                                    iter_in_visit, 2)
        lock.before_train_iter(runner, iter_in_visit)
        frozen = {n for n, p in model.student.named_parameters() if not p.requires_grad}
        assert frozen == (shared if iter_in_visit == 0 else set())
        log_vars, with_grad, changed = train_step(model, optim_wrapper, 'seg', 'chestx_det',
                                                  num_seg=13)
        assert_finite_losses(log_vars, 'chestx_det.seg.', ['loss_dice'])
        if iter_in_visit == 0:  # locked
            assert with_grad == changed == head
        else:  # released: UperNet reads all 4 stages
            assert with_grad == head | shared
            assert head | params_under(model, 'seg_neck', 'backbone.stages.0') <= changed
    ema.after_train_iter(runner, 1)
    student_now = model.student.seg_head.heads.chestx_det[0].weight
    torch.testing.assert_close(model.teacher.seg_head.heads.chestx_det[0].weight,
                               0.8 * teacher_start + 0.2 * student_now)
    assert not torch.equal(teacher_start, student_now)
    lock.after_train(runner)
    assert all(p.requires_grad for p in model.student.parameters())


def test_warm_up_and_cosine_are_counted_in_visits_of_any_length(cfg):
    """The schedulers, built as the Runner builds them (epoch_length = len(train_dataloader)),
    warm up over exactly the first 20 visits and decay along the 3000 visits, whatever the
    lengths of the visits."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 200, size=len(cfg.fx_pairs))  # visits of 1 to 9 iterations
    fake = SimpleNamespace(pair_names=[f'{name}.{task}' for name, task in pair_names(cfg)],
                           tasks=[task for _, task in cfg.fx_pairs],
                           cumulative_sizes=np.cumsum(sizes).tolist(),
                           weights=[1.] * len(sizes))
    batch_size = cfg.train_dataloader.batch_size
    sampler = MultiTaskSampler(fake, batch_size=batch_size, mode='cyclic', seed=0)
    assert len(set(sampler.visit_lens)) > 5
    loader = DataLoader(range(int(sizes.sum())), batch_size=batch_size, sampler=sampler)
    assert len(loader) == sampler.iters_per_cycle
    base_lr = cfg.optim_wrapper.optimizer.lr
    optim_wrapper = OptimWrapper(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))],
                                                   lr=base_lr))
    schedulers = [PARAM_SCHEDULERS.build(scheduler, default_args=dict(
        optimizer=optim_wrapper, epoch_length=len(loader))) for scheduler in cfg.param_scheduler]
    lrs = []
    for _ in range(sampler.visit_start_iter(cfg.max_visits)):
        lrs.append(optim_wrapper.param_groups[0]['lr'])
        for scheduler in schedulers:
            scheduler.step()
    lrs = np.array(lrs)

    # mmengine's LinearLR rises over [begin, end) and reaches the base lr at its last
    # iteration: the last one of visit 19; the cosine starts at visit 20
    warm_end = sampler.visit_start_iter(cfg.warmup_visits)
    assert lrs[0] == pytest.approx(base_lr * cfg.warmup_start_factor)
    assert np.all(np.diff(lrs[:warm_end]) > 0) and lrs[warm_end - 2] < base_lr
    assert lrs[warm_end - 1] == lrs[warm_end] == pytest.approx(base_lr)
    assert np.all(np.diff(lrs[warm_end:]) <= 1e-18)
    cycles = cfg.max_visits // len(cfg.fx_pairs)  # 150; the cosine runs over cycles 1..150
    for cycle in (2, 38, 75, 112, 149):
        expected = base_lr * (1 + math.cos(math.pi * (cycle - 1) / (cycles - 1))) / 2
        lr = lrs[sampler.visit_start_iter(cycle * len(cfg.fx_pairs))]
        assert lr == pytest.approx(expected, rel=1e-4, abs=1e-12)
    assert lrs[-1] < base_lr * 1e-3
