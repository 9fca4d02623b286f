"""Tests of LockReleaseHook: lock/release boundaries, frozen parameters bit-identical under
AdamW (weight decay, momentum, gradient accumulation, DDP), a real cyclic Runner run, resume
inside a locked phase, and the configuration errors."""
import glob
import os
import socket
from types import SimpleNamespace
from unittest.mock import Mock, patch

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fxmm.datasets.multi_task_dataset import MultiTaskDataset  # noqa: F401 (registers)
from fxmm.datasets.samplers.multi_task_sampler import VisitInfo
from fxmm.engine.hooks.lock_release_hook import LockReleaseHook
from fxmm.engine.runner.cyclic_train_loop import CyclicTrainLoop  # noqa: F401 (registers)
from fxmm.registry import MODELS
from fxmm.structures import CXRDataSample
from toy_pairs import ToyPairDataset  # noqa: F401 (registers)

MODULES = ('backbone', 'seg_neck', 'cls_head', 'loc_head', 'seg_head')
LOCK_MODULES = dict(cls=['backbone'], loc=['backbone'], seg=['backbone', 'seg_neck'])


@MODELS.register_module(force=True)
class ToyLockModelLRH(BaseModel):
    """A shared backbone, a seg-only shared neck and one head per task; the batch's task
    (from its data samples) picks the path, as in FoundationX."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.backbone = nn.Linear(2, 4)
        self.seg_neck = nn.Linear(4, 4)
        self.cls_head, self.loc_head, self.seg_head = (nn.Linear(4, 1) for _ in range(3))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        task = data_samples[0].task
        feat = torch.tanh(self.backbone(torch.stack(inputs)))  # (B, 2) -> (B, 4)
        if task == 'seg':
            feat = torch.tanh(self.seg_neck(feat))
        pred = getattr(self, f'{task}_head')(feat).squeeze(1)  # (B, 4) -> (B, )
        target = torch.tensor([s.target for s in data_samples])
        return dict(loss=((pred - target)**2).mean())


def toy_batch(task: str, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return dict(inputs=list(torch.randn(2, 2, generator=gen)),
                data_samples=[CXRDataSample(metainfo=dict(task=task, target=float(t)))
                              for t in torch.randn(2, generator=gen)])


def visits(*pairs_and_lens):
    """VisitInfo of consecutive cyclic visits ``('b.loc', 4), ...``, one per iteration."""
    infos = []
    for visit, (pair, visit_len) in enumerate(pairs_and_lens):
        infos += [VisitInfo(visit, visit, pair, pair.split('.')[1], i, visit_len)
                  for i in range(visit_len)]
    return infos


def snapshot(model):
    return {name: [p.detach().clone() for p in getattr(model, name).parameters()]
            for name in MODULES}


def changed(before, model):
    """The modules of ``model`` whose parameters are no longer bit-identical to ``before``."""
    return {name for name in MODULES if not all(
        torch.equal(old, new) for old, new in zip(before[name], getattr(model, name).parameters()))}


def mock_runner(model, optim_wrapper):
    """A runner for the hook's logic (the mmyolo way): the hook reads ``model``,
    ``optim_wrapper``, ``train_loop.current_visit``, ``iter`` and ``logger``."""
    return SimpleNamespace(model=model, optim_wrapper=optim_wrapper, iter=0, logger=Mock(),
                           train_loop=SimpleNamespace(current_visit=None))


def drive(hook, runner, schedule, zero_kwargs=None, seed=0):
    """Run the hook and one ``update_params`` per VisitInfo; the changed modules per iter."""
    model = runner.model.module if isinstance(runner.model, DistributedDataParallel) \
        else runner.model
    hook.before_train(runner)
    changes = []
    for i, info in enumerate(schedule):
        runner.iter, runner.train_loop.current_visit = i, info
        hook.before_train_iter(runner, i)
        before = snapshot(model)
        loss = runner.model(**toy_batch(info.task, seed=seed + i), mode='loss')['loss']
        runner.optim_wrapper.update_params(loss, zero_kwargs=zero_kwargs)
        changes.append(changed(before, model))
    hook.after_train(runner)
    return changes


@pytest.mark.parametrize('mode, lock_fraction, visit_len, num_locked', [
    ('fraction', 0.5, 4, 2), ('fraction', 0.5, 3, 1), ('fraction', 0.5, 1, 0),
    ('fraction', 0.7, 10, 7), ('fraction', 0.29, 100, 29), ('fraction', 1.0, 5, 5),
    ('extra_pass', None, 6, 3), ('extra_pass', None, 4, 2)])
def test_lock_boundaries(mode, lock_fraction, visit_len, num_locked):
    hook = LockReleaseHook(mode=mode, lock_fraction=lock_fraction, lock_modules=LOCK_MODULES)
    for task in ('loc', 'seg', 'cls'):
        locked = [hook.is_locked(VisitInfo(3, 1, f'a.{task}', task, i, visit_len))
                  for i in range(visit_len)]
        expected = num_locked if task != 'cls' else 0  # cls is not in lock_tasks
        assert locked == [True] * expected + [False] * (visit_len - expected)
    fx_plus = LockReleaseHook(lock_tasks=('cls', ), lock_modules=LOCK_MODULES)
    assert fx_plus.is_locked(VisitInfo(0, 0, 'a.cls', 'cls', 0, 2))
    assert not fx_plus.is_locked(VisitInfo(0, 0, 'a.loc', 'loc', 0, 2))


# modules changed by each iteration of visits cls (2), loc (4), seg (4), cls (2)
EXPECTED_CHANGES = ([{'backbone', 'cls_head'}] * 2 + [{'loc_head'}] * 2
                    + [{'backbone', 'loc_head'}] * 2 + [{'seg_head'}] * 2
                    + [{'backbone', 'seg_neck', 'seg_head'}] * 2 + [{'backbone', 'cls_head'}] * 2)


@pytest.mark.parametrize('foreach, set_to_none', [(False, True), (True, True), (False, False)])
def test_frozen_params_stay_bit_identical_under_adamw(foreach, set_to_none):
    model = ToyLockModelLRH()
    optim_wrapper = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=0.01,
                                                   weight_decay=0.1, foreach=foreach))
    runner = mock_runner(model, optim_wrapper)
    hook = LockReleaseHook(lock_modules=LOCK_MODULES)
    schedule = visits(('a.cls', 2), ('b.loc', 4), ('c.seg', 4), ('a.cls', 2))
    # set_to_none=False leaves zero grads, which AdamW would apply (momentum, decay)
    changes = drive(hook, runner, schedule, zero_kwargs=dict(set_to_none=set_to_none))
    for info, change in zip(schedule, changes):
        locked = hook.is_locked(info)
        assert not change & (set(LOCK_MODULES[info.task]) if locked else set())
        assert f'{info.task}_head' in change and (locked or 'backbone' in change)
    if set_to_none:  # else zero grads also move idle modules (AdamW, not Lock-Release)
        assert changes == EXPECTED_CHANGES
    # the optimiser still holds every parameter, with the state of its last step
    assert len(optim_wrapper.param_groups[0]['params']) == len(list(model.parameters()))
    assert all(p.requires_grad for p in model.parameters())
    assert [c.args[0].split(':')[0] for c in runner.logger.info.call_args_list] == [
        'lock b.loc at iter 2 (visit 1)', 'release b.loc at iter 4 (visit 1)',
        'lock c.seg at iter 6 (visit 2)', 'release c.seg at iter 8 (visit 2)']


def test_lock_drops_gradients_accumulated_before_it():
    model = ToyLockModelLRH()
    optim_wrapper = OptimWrapper(
        torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1), accumulative_counts=2)
    runner = mock_runner(model, optim_wrapper)
    # iteration 0 (cls, released) accumulates; the step comes at iteration 1, locked
    changes = drive(LockReleaseHook(lock_modules=LOCK_MODULES, lock_fraction=1.0), runner,
                    visits(('a.cls', 1), ('b.loc', 3)))
    assert changes == [set(), {'cls_head', 'loc_head'}, set(), {'loc_head'}]


def test_consecutive_locked_visits_and_end_of_training_release():
    model = ToyLockModelLRH()
    runner = mock_runner(model, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    hook = LockReleaseHook(lock_modules=LOCK_MODULES, lock_fraction=1.0)
    hook.before_train(runner)
    for i, info in enumerate(visits(('b.loc', 1), ('c.seg', 1))):
        runner.iter, runner.train_loop.current_visit = i, info
        hook.before_train_iter(runner, i)
        assert not model.backbone.weight.requires_grad
        assert model.seg_neck.weight.requires_grad == (info.task == 'loc')
    runner.iter = 2
    hook.after_train(runner)
    assert all(p.requires_grad for p in model.parameters())
    assert [c.args[0].split(':')[0] for c in runner.logger.info.call_args_list] == [
        'lock b.loc at iter 0 (visit 0)', 'release b.loc at iter 1 (visit 0)',
        'lock c.seg at iter 1 (visit 1)', 'release c.seg at iter 2 (visit 1), the end of training']


def test_params_frozen_by_others_are_left_alone_and_frozen_stages_warns():
    model = ToyLockModelLRH()
    model.backbone.frozen_stages = 0  # as a Swin with frozen_stages=0 would do
    model.backbone.bias.requires_grad_(False)
    model.seg_neck.requires_grad_(False)
    runner = mock_runner(model, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    hook = LockReleaseHook(lock_modules=LOCK_MODULES)
    with patch('fxmm.engine.hooks.lock_release_hook.print_log', wraps=print_log) as log:
        changes = drive(hook, runner, visits(('b.loc', 2), ('c.seg', 2)))
    warnings = [c.args[0] for c in log.call_args_list]
    assert len(warnings) == 2
    assert "lock_modules['seg'] prefix 'seg_neck' has no trainable parameter" in warnings[0]
    assert 'backbone (Linear) has frozen_stages=0' in warnings[1]
    # seg_neck stays frozen through the seg release
    assert changes == [{'loc_head'}, {'backbone', 'loc_head'},
                       {'seg_head'}, {'backbone', 'seg_head'}]
    assert not model.backbone.bias.requires_grad and model.backbone.weight.requires_grad
    assert not any(p.requires_grad for p in model.seg_neck.parameters())


def test_frozen_stages_warning_looks_inside_a_teacher_student_model():
    """The lock prefixes name the student's modules: so does the frozen-stages check."""
    model = nn.Module()
    model.student, model.teacher = ToyLockModelLRH(), ToyLockModelLRH().requires_grad_(False)
    model.student.backbone.frozen_stages = 1
    runner = mock_runner(model, OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=1)))
    with patch('fxmm.engine.hooks.lock_release_hook.print_log', wraps=print_log) as log:
        LockReleaseHook(lock_modules=LOCK_MODULES).before_train(runner)
    assert [c.args[0].split(';')[0] for c in log.call_args_list] == [
        'LockReleaseHook: backbone (Linear) has frozen_stages=1']


def _ddp_worker(rank, port, out_dir):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    torch.set_num_threads(1)  # a forked child must not use the parent's OpenMP pool
    try:
        model = ToyLockModelLRH()
        ddp = DistributedDataParallel(model, find_unused_parameters=True)
        runner = mock_runner(ddp, OptimWrapper(
            torch.optim.AdamW(ddp.parameters(), lr=0.01, weight_decay=0.1)))
        hook = LockReleaseHook(lock_modules=LOCK_MODULES)
        schedule = visits(('a.cls', 2), ('b.loc', 4), ('c.seg', 4), ('a.cls', 2))
        changes = drive(hook, runner, schedule, seed=100 * rank)  # different data per rank
        weights = [torch.zeros_like(model.backbone.weight) for _ in range(2)]
        dist.all_gather(weights, model.backbone.weight.detach())
        torch.save((changes, torch.equal(*weights)), os.path.join(out_dir, f'{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_ddp_with_unused_parameters_keeps_frozen_params_and_ranks_in_sync(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.start_processes(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, start_method='fork')
    for rank in range(2):
        changes, ranks_equal = torch.load(tmp_path / f'{rank}.pth')
        assert changes == EXPECTED_CHANGES and ranks_equal


# ---- a real Runner with CyclicTrainLoop and MultiTaskSampler ----


class ChangeRecorder(Hook):
    """Records the modules each iteration changed (runs after every other hook)."""
    priority = 'LOWEST'

    def __init__(self):
        self.changes, self._before = [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._before = snapshot(runner.model)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.changes.append(changed(self._before, runner.model))


def make_runner(work_dir, name, hook_cfg, sizes, iters_per_visit=None, max_iters=14):
    pairs = [dict(dataset=dict(type='ToyPairDataset', num_samples=n, name=pair.split('.')[0],
                               start=10 * k, divisor=10), task=pair.split('.')[1])
             for k, (pair, n) in enumerate(sizes.items())]
    return Runner(
        model=dict(type='ToyLockModelLRH'),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=dict(type='MultiTaskDataset', pairs=pairs),
            sampler=dict(type='MultiTaskSampler', batch_size=2, seed=3,
                         iters_per_visit=iters_per_visit),
            batch_size=2, num_workers=0, collate_fn=dict(type='pseudo_collate')),
        train_cfg=dict(type='CyclicTrainLoop', max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.1)),
        custom_hooks=[dict(type='LockReleaseHook', lock_modules=LOCK_MODULES, **hook_cfg)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=7, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        default_scope='fxmm')


def read_log(runner) -> str:
    log_file, = glob.glob(os.path.join(runner.log_dir, '*.log'))
    with open(log_file) as f:
        return f.read()


# one-pass visits of 2, 4 and 4 iterations: cls 0-1, loc 2-5, seg 6-9, cls 10-11, loc 12-13
FRACTION = (dict(), {'a.cls': 4, 'b.loc': 8, 'c.seg': 8}, None)
# the same layout in two-pass visits (two passes of 2 iterations) for the locked pairs
EXTRA_PASS = (dict(mode='extra_pass'), {'a.cls': 4, 'b.loc': 4, 'c.seg': 4},
              {'b.loc': 4, 'c.seg': 4})


@pytest.mark.parametrize('hook_cfg, sizes, iters_per_visit', [FRACTION, EXTRA_PASS],
                         ids=['fraction', 'extra_pass'])
def test_runner_locks_and_releases_along_the_visit_cycle(tmp_path, hook_cfg, sizes,
                                                         iters_per_visit):
    runner = make_runner(tmp_path, hook_cfg.get('mode', 'fraction'), hook_cfg, sizes,
                         iters_per_visit)
    recorder = ChangeRecorder()
    runner.register_hook(recorder)
    runner.train()
    assert recorder.changes == EXPECTED_CHANGES + [{'loc_head'}] * 2
    assert all(p.requires_grad for p in runner.model.parameters())
    log = read_log(runner)
    for line in ('lock b.loc at iter 2 (visit 1): 2 params', 'release b.loc at iter 4 (visit 1)',
                 "lock c.seg at iter 6 (visit 2): 4 params of ['backbone', 'seg_neck'] frozen",
                 'release c.seg at iter 8 (visit 2)', 'lock b.loc at iter 12 (visit 4)',
                 'release b.loc at iter 14 (visit 4), the end of training'):
        assert line in log


def test_resume_inside_a_locked_phase_matches_the_uninterrupted_run(tmp_path):
    full = make_runner(tmp_path / 'full', 'lrh_full', {}, FRACTION[1])
    full.train()
    # iter_7.pth: 7 iterations done; iteration 7 is the second, locked one of c.seg
    resumed = make_runner(tmp_path / 'resumed', 'lrh_resumed', {}, FRACTION[1])
    resumed._load_from = str(tmp_path / 'full' / 'iter_7.pth')
    resumed._resume = True
    recorder = ChangeRecorder()
    resumed.register_hook(recorder)
    resumed.train()
    assert recorder.changes == EXPECTED_CHANGES[7:] + [{'loc_head'}] * 2
    assert 'lock c.seg at iter 7 (visit 2)' in read_log(resumed)
    resumed_state = resumed.model.state_dict()
    for name, param in full.model.state_dict().items():
        assert torch.equal(param, resumed_state[name]), name


def test_extra_pass_needs_two_pass_visits(tmp_path):
    runner = make_runner(tmp_path, 'one_pass', dict(mode='extra_pass'), FRACTION[1])
    with pytest.raises(ValueError, match=r"must last two passes; got \{'b.loc': 4, 'c.seg': 4\} "
                                         r"iterations, set the sampler's iters_per_visit="
                                         r"\{'b.loc': 8, 'c.seg': 8\}"):
        runner.train()


def test_without_lock_modules_the_hook_locks_what_foundation_x_shares():
    import fxmm.models.data_preprocessors.cxr_data_preprocessor  # noqa: F401  registers
    import fxmm.models.foundation_x  # noqa: F401
    import fxmm.models.heads.multi_cls_head  # noqa: F401
    import fxmm.models.heads.multi_seg_head  # noqa: F401
    import fxmm.models.necks.shared_upernet  # noqa: F401
    from fxmm.testing._utils import get_tiny_model_cfg
    with DefaultScope.overwrite_default_scope('fxmm'):
        model = MODELS.build(get_tiny_model_cfg(with_loc=True))
    runner = mock_runner(model, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    hook = LockReleaseHook(lock_tasks=('cls', 'loc', 'seg'))
    hook.before_train(runner)
    ids = {task: {id(p) for p in params} for task, params in hook._params.items()}
    backbone = {id(p) for p in model.backbone.parameters()}
    # the method's shared parts: the backbone, DINO's encoder side (all but the per-dataset
    # branches), the seg decoder
    loc_shared = {id(p) for n, p in model.loc_head.named_parameters()
                  if not n.startswith('branches.')}
    assert ids['cls'] == backbone
    assert ids['loc'] == backbone | loc_shared
    assert ids['seg'] == backbone | {id(p) for p in model.seg_neck.parameters()}

    # a lock task the model has no path for, a model that does not name its shared modules
    with DefaultScope.overwrite_default_scope('fxmm'):
        no_loc = MODELS.build(get_tiny_model_cfg())
    runner = mock_runner(no_loc, OptimWrapper(torch.optim.SGD(no_loc.parameters(), lr=0.1)))
    with pytest.raises(ValueError, match=r"lock task 'loc': FoundationX has no loc path: no "
                                         r"dataset has det_classes; leave it out of lock_tasks"):
        LockReleaseHook(lock_tasks=('loc', 'seg')).before_train(runner)
    LockReleaseHook(lock_tasks=('seg', )).before_train(runner)
    toy = ToyLockModelLRH()
    runner = mock_runner(toy, OptimWrapper(torch.optim.SGD(toy.parameters(), lr=0.1)))
    with pytest.raises(TypeError, match=r'ToyLockModelLRH does not name the modules each task '
                                        r'shares .*give the hook lock_modules='):
        LockReleaseHook().before_train(runner)


def test_configuration_errors():
    model = ToyLockModelLRH()
    runner = mock_runner(model, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    bad_prefix = LockReleaseHook(lock_modules=dict(LOCK_MODULES, seg=['backbone', 'seg_nek']))
    with pytest.raises(ValueError, match=r"lock_modules\['seg'\] prefix 'seg_nek' matches no "
                                         r"parameter of ToyLockModelLRH; its top-level children "
                                         r"are \['data_preprocessor', 'backbone', 'seg_neck', "
                                         r"'cls_head', 'loc_head', 'seg_head'\]"):
        bad_prefix.before_train(runner)
    with pytest.raises(ValueError, match=r"need lock_modules entries; missing \['seg'\]"):
        LockReleaseHook(lock_modules=dict(loc=['backbone']))
    with pytest.raises(ValueError, match=r"lock_modules\['loc'\] must be a non-empty list"):
        LockReleaseHook(lock_modules=dict(loc='backbone', seg=['backbone']))
    with pytest.raises(ValueError, match="unknown task 'det'"):
        LockReleaseHook(lock_tasks=('det', ), lock_modules=LOCK_MODULES)
    with pytest.raises(ValueError, match=r'lock_fraction must be in \(0, 1\], got 0'):
        LockReleaseHook(lock_fraction=0, lock_modules=LOCK_MODULES)
    with pytest.raises(ValueError, match="lock_fraction .0.5. applies to mode='fraction' only"):
        LockReleaseHook(mode='extra_pass', lock_fraction=0.5, lock_modules=LOCK_MODULES)
    with pytest.raises(ValueError, match="mode must be one of"):
        LockReleaseHook(mode='half', lock_modules=LOCK_MODULES)

    hook = LockReleaseHook(lock_modules=LOCK_MODULES)
    heads_only = OptimWrapper(torch.optim.SGD(model.loc_head.parameters(), lr=0.1))
    with pytest.raises(RuntimeError, match=r"4 parameter\(s\) to lock are not in the optimiser "
                                           r"\(e.g. \['backbone.bias', 'backbone.weight', "
                                           r"'seg_neck.bias'\]\)"):
        hook.before_train(mock_runner(model, heads_only))
    no_visits = mock_runner(model, runner.optim_wrapper)
    no_visits.train_loop = object()
    with pytest.raises(TypeError, match="needs a train loop that reports the visit"):
        hook.before_train(no_visits)
    ddp = Mock(spec=DistributedDataParallel, module=model, find_unused_parameters=False,
               static_graph=False)
    with pytest.raises(ValueError, match='wrap with find_unused_parameters=True'):
        hook.before_train(mock_runner(ddp, runner.optim_wrapper))


@pytest.mark.parametrize('norm_eval', [False, True])
def test_norm_eval_keeps_the_locked_batch_norm_statistics(norm_eval):
    """A BatchNorm under a lock prefix updates its running mean while locked (requires_grad
    does not stop it), unless norm_eval keeps it in eval mode through the loop's
    model.train(); after the release it follows the batches again either way."""
    model = ToyLockModelLRH()
    model.seg_neck = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    norm = model.seg_neck[1]
    runner = mock_runner(model, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    hook = LockReleaseHook(lock_modules=LOCK_MODULES, norm_eval=norm_eval)
    hook.before_train(runner)
    moved = []
    for i, info in enumerate(visits(('c.seg', 4))):  # iterations 0, 1 locked; 2, 3 released
        model.train()  # as CyclicTrainLoop does before every iteration
        runner.iter, runner.train_loop.current_visit = i, info
        hook.before_train_iter(runner, i)
        before = norm.running_mean.clone()
        loss = model(**toy_batch('seg', seed=i), mode='loss')['loss']
        runner.optim_wrapper.update_params(loss)
        moved.append(not torch.equal(before, norm.running_mean))
        assert norm.training == (not norm_eval or i >= 2)
    hook.after_train(runner)
    assert moved == [not norm_eval, not norm_eval, True, True]
