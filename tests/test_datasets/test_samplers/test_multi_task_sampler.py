"""Tests of MultiTaskSampler: cycle order, visit coverage, rank sharding, determinism,
exact restart, mixed-mode weights and the sequential evaluation mode."""
import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset, pseudo_collate
from torch.utils.data import DataLoader

from fxmm.datasets.multi_task_dataset import MultiTaskDataset
from fxmm.datasets.samplers import multi_task_sampler
from fxmm.datasets.samplers.multi_task_sampler import MultiTaskSampler, VisitInfo
from fxmm.registry import DATA_SAMPLERS, DATASETS
from fxmm.structures import CXRDataSample

SIZES = (5, 7, 3)
NAMES = ['a.cls', 'b.loc', 'c.seg']


def pack(results: dict) -> dict:
    return dict(inputs=torch.tensor([float(results['sample_idx'])]),
                data_samples=CXRDataSample(metainfo=dict(sample_idx=results['sample_idx'])))


@DATASETS.register_module(force=True)
class ToyDatasetMTS(BaseDataset):
    """``num_samples`` empty samples of dataset ``name``."""

    def __init__(self, num_samples: int, name: str, **kwargs):
        self.num_samples, self.name = num_samples, name
        super().__init__(pipeline=[pack], serialize_data=False, **kwargs)

    def load_data_list(self):
        self._metainfo['dataset'] = self.name  # as an annotation file's metainfo would
        return [dict() for _ in range(self.num_samples)]


def make_dataset(sizes=SIZES, weights=(1.0, 1.0, 1.0)):
    return MultiTaskDataset([
        dict(dataset=dict(type='ToyDatasetMTS', num_samples=n, name=name.split('.')[0]),
             task=name.split('.')[1], weight=w)
        for n, name, w in zip(sizes, NAMES, weights)])


@pytest.fixture(scope='module')
def dataset():
    return make_dataset()


def make_sampler(dataset, rank=0, world_size=1, seed=0, **kwargs):
    """A sampler as rank ``rank`` of ``world_size`` sees it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(multi_task_sampler, 'get_dist_info', lambda: (rank, world_size))
        return MultiTaskSampler(dataset, seed=seed, **kwargs)


def batches(sampler, num_iters, start=None):
    """The first ``num_iters`` batches of a new iterator (from ``start`` if given)."""
    if start is not None:
        sampler.set_start_iter(start)
    flat = list(itertools.islice(iter(sampler), num_iters * sampler.batch_size))
    return [flat[i:i + sampler.batch_size] for i in range(0, len(flat), sampler.batch_size)]


def pair_of_batch(dataset, batch):
    """The one pair of a batch; fails if the batch mixes pairs."""
    pairs = {dataset.pair_index(i)[0] for i in batch}
    assert len(pairs) == 1, f'batch {batch} mixes pairs {pairs}'
    return pairs.pop()


def test_cycle_order_and_visit_lengths(dataset):
    sampler = make_sampler(dataset, batch_size=2)
    assert sampler.visit_lens == [3, 4, 2]  # ceil(5 / 2), ceil(7 / 2), ceil(3 / 2)
    assert sampler.iters_per_cycle == 9 and len(sampler) == 18
    stream = batches(sampler, 27)
    assert [pair_of_batch(dataset, b) for b in stream] == ([0] * 3 + [1] * 4 + [2] * 2) * 3
    assert sampler.schedule(0) == VisitInfo(0, 0, 'a.cls', 'cls', 0, 3)
    assert sampler.schedule(6) == VisitInfo(1, 1, 'b.loc', 'loc', 3, 4)
    assert sampler.schedule(7) == VisitInfo(2, 2, 'c.seg', 'seg', 0, 2)
    assert sampler.schedule(19) == VisitInfo(6, 0, 'a.cls', 'cls', 1, 3)
    assert sampler.schedule(22) == VisitInfo(7, 1, 'b.loc', 'loc', 1, 4)
    assert [sampler.visit_start_iter(k) for k in range(7)] == [0, 3, 7, 9, 12, 16, 18]
    schedule = list(itertools.islice(sampler.iter_schedule(), 27))
    assert [info.visit for info in schedule] == [v for v in range(9) for _ in
                                                 range(sampler.visit_lens[v % 3])]


def test_one_pass_visits_cover_each_pair_with_fresh_orders(dataset):
    sampler = make_sampler(dataset, batch_size=2)
    stream = batches(sampler, 18)
    visits = [sum(stream[0:3], []), sum(stream[3:7], []), sum(stream[7:9], []),
              sum(stream[9:12], []), sum(stream[12:16], []), sum(stream[16:18], [])]
    for k, visit in enumerate(visits):
        pair = k % 3
        begin = dataset.cumulative_sizes[pair] - SIZES[pair]
        # one full pass, then wrap-around padding of the last batch
        assert sorted(set(visit)) == list(range(begin, begin + SIZES[pair]))
        assert len(visit) - len(set(visit)) == 2 * sampler.visit_lens[pair] - SIZES[pair]
        assert sorted(visit[:SIZES[pair]]) == list(range(begin, begin + SIZES[pair]))
    assert visits[0][:5] != visits[3][:5] and visits[1][:7] != visits[4][:7]


def test_two_ranks_share_the_pair_and_split_its_data(dataset):
    ranks = [make_sampler(dataset, rank=r, world_size=2, batch_size=2) for r in (0, 1)]
    # one pass per visit over 2 ranks x 2 samples: ceil(5/4), ceil(7/4), ceil(3/4)
    assert ranks[0].visit_lens == [2, 2, 1]
    streams = [batches(s, 10) for s in ranks]
    for b0, b1 in zip(*streams):
        assert pair_of_batch(dataset, b0) == pair_of_batch(dataset, b1)
    for first, last in [(0, 2), (2, 4), (4, 5), (5, 7), (7, 9), (9, 10)]:
        pair = pair_of_batch(dataset, streams[0][first])
        begin = dataset.cumulative_sizes[pair] - SIZES[pair]
        # the visit's sequence in global order: rank 0's block, then rank 1's, per step
        whole = [i for step in range(first, last) for r in (0, 1) for i in streams[r][step]]
        assert sorted(whole[:SIZES[pair]]) == list(range(begin, begin + SIZES[pair]))
        shard0 = {i for b in streams[0][first:last] for i in b}
        shard1 = {i for b in streams[1][first:last] for i in b}
        assert shard0 | shard1 == set(range(begin, begin + SIZES[pair]))
        assert len(shard0 & shard1) <= len(whole) - SIZES[pair]  # only the padding


@pytest.mark.parametrize('mode', ['cyclic', 'mixed'])
def test_stream_is_deterministic_per_seed(dataset, mode):
    first = batches(make_sampler(dataset, batch_size=2, mode=mode, seed=3), 40)
    assert first == batches(make_sampler(dataset, batch_size=2, mode=mode, seed=3), 40)
    assert first != batches(make_sampler(dataset, batch_size=2, mode=mode, seed=4), 40)
    unshuffled = batches(make_sampler(dataset, batch_size=2, mode=mode, shuffle=False), 40)
    if mode == 'cyclic':
        assert unshuffled[:4] == [[0, 1], [2, 3], [4, 0], [5, 6]]


@pytest.mark.parametrize('mode, starts, length', [
    ('cyclic', (0, 1, 4, 7, 13, 26), 30),
    ('mixed', (0, 5, 1023, 1024, 1030), 1100),  # across a MIXED_BLOCK boundary
])
def test_set_start_iter_continues_the_uninterrupted_stream(dataset, mode, starts, length):
    sampler = make_sampler(dataset, rank=1, world_size=2, batch_size=2, mode=mode)
    full = batches(sampler, length)
    schedule = list(itertools.islice(sampler.iter_schedule(), length))
    for start in starts:
        assert batches(sampler, length - start, start=start) == full[start:]
        assert sampler.schedule(start) == schedule[start]
    with pytest.raises(ValueError, match='non-negative int'):
        sampler.set_start_iter(-1)


def test_iters_per_visit_sets_caps_and_repeats(dataset):
    capped = make_sampler(dataset, batch_size=2, iters_per_visit=2)
    assert capped.visit_lens == [2, 2, 2]
    stream = batches(capped, 6)
    visit_b = sum(stream[2:4], [])
    assert len(set(visit_b)) == 4 and set(visit_b) <= set(range(5, 12))  # a subset of b
    per_pair = make_sampler(dataset, batch_size=2, iters_per_visit={'b.loc': 6})
    assert per_pair.visit_lens == [3, 6, 2]
    visit_b = sum(batches(per_pair, 9)[3:9], [])
    counts = Counter(visit_b)
    assert set(counts) == set(range(5, 12)) and sorted(counts.values()) == [1] * 2 + [2] * 5
    with pytest.raises(ValueError, match=r"unknown pair\(s\) \['x.cls'\]"):
        make_sampler(dataset, batch_size=2, iters_per_visit={'x.cls': 3})
    with pytest.raises(ValueError, match="iters_per_visit of 'a.cls' must be a positive"):
        make_sampler(dataset, batch_size=2, iters_per_visit=0)


def test_mixed_mode_follows_the_weights(dataset):
    num_iters = 12000
    for weights in ([1, 2, 1], {'b.loc': 2}):
        sampler = make_sampler(dataset, batch_size=2, mode='mixed', weights=weights)
        schedule = list(itertools.islice(sampler.iter_schedule(), num_iters))
        freq = np.bincount([info.pair_idx for info in schedule], minlength=3) / num_iters
        np.testing.assert_allclose(freq, [0.25, 0.5, 0.25], atol=0.02)
    # the pairs' own weights by default; a weight of 0 is never drawn
    own = make_sampler(make_dataset(weights=(3.0, 1.0, 0.0)), batch_size=2, mode='mixed')
    schedule = list(itertools.islice(own.iter_schedule(), num_iters))
    freq = np.bincount([info.pair_idx for info in schedule], minlength=3) / num_iters
    np.testing.assert_allclose(freq, [0.75, 0.25, 0.0], atol=0.02)
    assert freq[2] == 0


def test_mixed_mode_walks_each_pair_visit_by_visit(dataset):
    sampler = make_sampler(dataset, batch_size=2, mode='mixed')
    stream = batches(sampler, 60)
    schedule = list(itertools.islice(sampler.iter_schedule(), 60))
    assert len({info.pair_idx for info in schedule[:10]}) > 1  # pairs interleave
    for pair in range(3):
        own = [(b, info) for b, info in zip(stream, schedule) if info.pair_idx == pair]
        assert all(pair_of_batch(dataset, b) == pair for b, _ in own)
        assert [info.iter_in_visit for _, info in own] == [
            k % sampler.visit_lens[pair] for k in range(len(own))]
        assert [info.visit for _, info in own] == [
            3 * (k // sampler.visit_lens[pair]) + pair for k in range(len(own))]
        begin = dataset.cumulative_sizes[pair] - SIZES[pair]
        first_visit = sum([b for b, _ in own[:sampler.visit_lens[pair]]], [])
        assert set(first_visit) == set(range(begin, begin + SIZES[pair]))
    with pytest.raises(ValueError, match='visits interleave'):
        sampler.visit_start_iter(1)


@pytest.mark.parametrize('world_size', [1, 2])
def test_sequential_mode_covers_every_index_once(dataset, world_size):
    ranks = [make_sampler(dataset, rank=r, world_size=world_size, batch_size=2,
                          mode='sequential') for r in range(world_size)]
    streams = [list(s) for s in ranks]
    assert [len(s) for s in ranks] == [len(s) for s in streams]
    expected_len = {1: 2 * (3 + 4 + 2), 2: 2 * (2 + 2 + 1)}[world_size]
    assert all(len(s) == expected_len for s in streams)
    assert sorted(set(itertools.chain(*streams))) == list(range(len(dataset)))
    per_rank = [[s[i:i + 2] for i in range(0, len(s), 2)] for s in streams]
    for step in zip(*per_rank):
        assert len({pair_of_batch(dataset, b) for b in step}) == 1
    for pair, size in enumerate(SIZES):
        begin = dataset.cumulative_sizes[pair] - size
        ordered = [i for step in zip(*per_rank) for b in step for i in b
                   if dataset.pair_index(i)[0] == pair]
        # in order, padded with repeats of the pair's last index
        assert ordered[:size] == list(range(begin, begin + size))
        assert set(ordered[size:]) <= {begin + size - 1}
    assert streams == [list(s) for s in ranks]  # finite and repeatable


def test_dataloader_batches_hold_one_pair(dataset):
    sampler = DATA_SAMPLERS.build(dict(type='MultiTaskSampler', batch_size=2),
                                  default_args=dict(dataset=dataset, seed=5))
    assert isinstance(sampler, MultiTaskSampler) and sampler.seed == 5
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, collate_fn=pseudo_collate)
    schedule = itertools.islice(sampler.iter_schedule(), 12)
    for batch, info, indices in zip(loader, schedule, batches(sampler, 12)):
        metas = {(s.dataset, s.task) for s in batch['data_samples']}
        assert metas == {tuple(info.pair_name.split('.'))}
        assert [s.sample_idx for s in batch['data_samples']] == indices


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(batch_size=2, mode='random'), ValueError, 'mode must be one of'),
    (dict(batch_size=0), ValueError, 'batch_size must be a positive int'),
    (dict(batch_size=2, weights=[1, 1, 1]), ValueError, "weights apply to mode='mixed' only"),
    (dict(batch_size=2, mode='sequential', iters_per_visit=3), ValueError, 'sequential'),
    (dict(batch_size=2, mode='mixed', weights=[1, 1]), ValueError, '2 values for 3 pairs'),
    (dict(batch_size=2, mode='mixed', weights=[0, 0, 0]), ValueError, 'not all 0'),
    (dict(batch_size=2, mode='mixed', weights={'z.seg': 1}), ValueError, 'unknown pair'),
    (dict(batch_size=2, seed=-1), ValueError, 'seed must be a non-negative int'),
])
def test_bad_arguments_get_clear_errors(dataset, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_sampler(dataset, **kwargs)


def test_needs_a_multi_task_dataset():
    with pytest.raises(TypeError, match='needs a MultiTaskDataset, got list'):
        MultiTaskSampler(list(range(4)), batch_size=2, seed=0)
