"""DDP on the CPU (gloo, two processes under torchrun) of the demo model at toy size, through
one full cycle of the 8 phantom pairs with Lock-Release and the per-visit EMA teacher:
every rank trains the same pair on its shard of the global batch, the ranks end with
identical weights, and those equal the weights of one process trained on the whole batch.

What makes two processes of batch 2 equivalent to one of batch 4 here (see
docs/distributed.md): GroupNorm instead of BatchNorm in the UperNet (torch's SyncBatchNorm
needs CUDA); no drop path; train images with one box each and de-noising queries without
noise (DINO pads its de-noising queries to the batch's largest box count and draws their
noise per batch; the L1 loss turns any noise into a +-1 gradient); SGD, whose update is linear
in the gradient (AdamW's first steps are about lr * sign(grad), which turns rounding in
near-zero gradients into differences of the order of lr).
"""
import itertools
import json
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import fxmm.datasets.samplers.multi_task_sampler as sampler_module
from _helpers import TRAIN, load_state, make_phantoms, run, tiny_config
from fxmm.datasets.samplers.multi_task_sampler import MultiTaskSampler

SGD = ['optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.lr=0.05',
       'optim_wrapper.optimizer.momentum=0.9']
PER_RANK = ['train_dataloader.batch_size=2', 'train_dataloader.sampler.batch_size=2']


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """One cycle (8 visits of 2 iterations) in two processes of batch 2 and in one of 4."""
    tmp = tmp_path_factory.mktemp('ddp')
    data = make_phantoms(str(tmp / 'data'), num_train=8, num_eval=3, one_box=True)
    config = tiny_config(str(tmp / 'tiny.py'), data)
    # backend left at the base runtime's nccl: without CUDA tools/train.py falls back to gloo
    ddp_log = run(TRAIN, [config, '--work-dir', 'ddp', '--cfg-options', *SGD, *PER_RANK,
                          'env_cfg.dist_cfg.backend=nccl'], str(tmp), nproc=2)
    run(TRAIN, [config, '--work-dir', 'single', '--cfg-options', *SGD], str(tmp))
    return tmp, ddp_log


def _iters(work_dir, rank=0):
    with open(osp.join(work_dir, f'rank{rank}_iters.json')) as f:
        return json.load(f)


def test_two_processes_on_gloo_with_lock_and_teacher(runs):
    tmp, log = runs
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'the distributed backend falls back to gloo' in log
    # a locked phase of each locked task, released within its visit
    assert 'lock phantom_loc.loc at iter 4 (visit 2)' in log
    assert 'release phantom_loc.loc at iter 5 (visit 2)' in log
    assert 'lock phantom_seg.seg at iter 8 (visit 4)' in log
    ranks = [_iters(tmp / 'ddp', r) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 16
    for rank in ranks:
        assert [it['locked'] for it in rank] == [i in (4, 8, 12, 14) for i in range(16)]
        # the teacher moves at the end of each visit only (odd iterations)
        sums = [it['teacher_sum'] for it in rank]
        changed = [i for i in range(1, 16) if sums[i] != sums[i - 1]]
        assert changed == list(range(1, 16, 2))


def test_ranks_train_one_pair_on_shards_of_the_global_batch(runs):
    tmp, _ = runs
    rank0, rank1 = _iters(tmp / 'ddp', 0), _iters(tmp / 'ddp', 1)
    single = _iters(tmp / 'single')
    for i, (it0, it1, it) in enumerate(zip(rank0, rank1, single)):
        pairs = {s.split('#')[0] for s in it0['samples'] + it1['samples']}
        assert len(pairs) == 1, f'iteration {i}: ranks on {pairs}'
        assert it0['samples'] + it1['samples'] == it['samples'], f'iteration {i}'


def test_ranks_end_identical_and_equal_to_one_process(runs):
    tmp, _ = runs
    rank0 = load_state(tmp / 'ddp' / 'rank0_state.pth')
    rank1 = load_state(tmp / 'ddp' / 'rank1_state.pth')
    single = load_state(tmp / 'single' / 'rank0_state.pth')
    init = load_state(tmp / 'single' / 'rank0_init.pth')
    assert rank0.keys() == rank1.keys() == single.keys()
    assert any(k.startswith('teacher.') for k in rank0)
    different = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
    assert not different, f'ranks differ in {different[:5]}'
    # the checkpoint rank 0 wrote holds the same weights
    ckpt = load_state(tmp / 'ddp' / 'iter_16.pth')
    assert all(torch.equal(ckpt[k], rank0[k]) for k in rank0)

    def max_diff(a, b):
        return max((a[k].double() - b[k].double()).abs().max().item() for k in a
                   if a[k].is_floating_point() and k != 'progress')

    moved = max_diff(single, init)
    assert moved > 1e-2, 'training barely changed the weights: the comparison is void'
    assert max_diff(rank0, single) < 1e-5


@pytest.mark.parametrize('mode', ['cyclic', 'mixed'])
@pytest.mark.parametrize('iters_per_visit', [None, 3])
def test_rank_shards_concatenate_to_the_single_process_batch(monkeypatch, mode,
                                                             iters_per_visit):
    """At every iteration the ranks' batches (in rank order) are the one-process batch of
    the same global size, for one-pass and fixed visits, odd pair sizes included."""
    dataset = SimpleNamespace(pair_names=['a.cls', 'b.loc', 'c.seg'],
                              tasks=['cls', 'loc', 'seg'], cumulative_sizes=[5, 8, 15],
                              weights=[1., 2., 1.])

    def stream(rank, world_size, batch_size, num_iters=40):
        monkeypatch.setattr(sampler_module, 'get_dist_info', lambda: (rank, world_size))
        sampler = MultiTaskSampler(dataset, batch_size, mode=mode,
                                   iters_per_visit=iters_per_visit, seed=3)
        flat = list(itertools.islice(iter(sampler), num_iters * batch_size))
        return np.reshape(flat, (num_iters, batch_size))

    single = stream(0, 1, 4)
    shards = np.concatenate([stream(r, 2, 2) for r in (0, 1)], axis=1)
    np.testing.assert_array_equal(shards, single)
    # and one pair per global batch
    pair = np.searchsorted(dataset.cumulative_sizes, single, side='right')
    assert (pair == pair[:, :1]).all()
