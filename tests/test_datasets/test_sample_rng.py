"""Per-sample augmentation seeds: MultiTaskSampler's SeededIndex, MultiTaskDataset running
the pipeline in the sample's generator, the random transforms drawing from it. The same
sample at the same iteration gets the same augmentation with any num_workers, after a restart
of the sampler (a resume), and on the ranks of DDP as in one process."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.dataset import BaseDataset, pseudo_collate
from torch.utils.data import DataLoader

from fxmm.datasets.multi_task_dataset import MultiTaskDataset
from fxmm.datasets.sample_rng import SeededIndex, current_sample_rng, sample_rng
from fxmm.datasets.samplers import multi_task_sampler
from fxmm.datasets.samplers.multi_task_sampler import SAMPLE_STREAM, MultiTaskSampler
from fxmm.datasets.transforms.geometric import CXRRandomResizedCrop, CXRRandomRotate
from fxmm.registry import DATASETS
from fxmm.structures import CXRDataSample


def make_image(results: dict) -> dict:
    """A 16 x 16 image that tells the samples apart."""
    value = results['sample_idx']
    results['img'] = (np.arange(256, dtype=np.float32).reshape(16, 16) + 1000 * value)
    return results


def pack(results: dict) -> dict:
    return dict(inputs=torch.from_numpy(np.ascontiguousarray(results['img'])),
                data_samples=CXRDataSample(metainfo=dict(sample_idx=results['sample_idx'])))


@DATASETS.register_module(force=True)
class ToyAugmentedDatasetSR(BaseDataset):
    """``num_samples`` images of dataset ``name``, randomly cropped and rotated."""

    def __init__(self, num_samples: int, name: str, **kwargs):
        self.num_samples, self.name = num_samples, name
        pipeline = [make_image, CXRRandomResizedCrop(scale=8, area_range=(0.2, 1.0)),
                    CXRRandomRotate(max_angle=30.), pack]
        super().__init__(pipeline=pipeline, serialize_data=False, **kwargs)

    def load_data_list(self):
        self._metainfo['dataset'] = self.name
        return [dict() for _ in range(self.num_samples)]


def make_dataset():
    return MultiTaskDataset([
        dict(dataset=dict(type='ToyAugmentedDatasetSR', num_samples=5, name='a'), task='cls'),
        dict(dataset=dict(type='ToyAugmentedDatasetSR', num_samples=3, name='b'), task='seg')])


def make_sampler(dataset, rank=0, world_size=1, **kwargs):
    """A sampler as rank ``rank`` of ``world_size`` sees it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(multi_task_sampler, 'get_dist_info', lambda: (rank, world_size))
        return MultiTaskSampler(dataset, seed=7, **kwargs)


def load(num_workers, start=0, num_iters=12):
    """``(sample_idx, image)`` of every sample of iterations ``start`` .. ``num_iters - 1``."""
    dataset = make_dataset()
    sampler = make_sampler(dataset, batch_size=2, iters_per_visit=3)
    sampler.set_start_iter(start)
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=num_workers,
                        collate_fn=pseudo_collate)
    out = []
    for _, batch in zip(range(start, num_iters), loader):
        out.extend((s.sample_idx, img) for s, img in zip(batch['data_samples'],
                                                         batch['inputs']))
    return out


def assert_same(a, b):
    assert [idx for idx, _ in a] == [idx for idx, _ in b]
    for (idx, img_a), (_, img_b) in zip(a, b):
        assert torch.equal(img_a, img_b), f'sample {idx}'


def test_augmentations_same_with_any_num_workers_and_after_a_restart():
    single = load(num_workers=0)
    assert len(single) == 24
    assert_same(load(num_workers=2), single)
    # a resume restarts the sampler at the saved iteration: the same augmented samples
    assert_same(load(num_workers=2, start=5), single[5 * 2:])
    assert_same(load(num_workers=0, start=9), single[9 * 2:])
    # and they are random: a sample seen at several iterations is augmented differently
    seen = {}
    for idx, img in single:
        seen.setdefault(idx, []).append(img)
    repeated = [imgs for imgs in seen.values() if len(imgs) > 1]
    assert repeated and all(not torch.equal(imgs[0], imgs[1]) for imgs in repeated)


def test_seeds_are_the_place_in_the_global_batch():
    """Two ranks of batch 2 yield the seeds of one process of batch 4, in rank order."""
    dataset = make_dataset()
    one = make_sampler(dataset, batch_size=4, iters_per_visit=2)
    ranks = [make_sampler(dataset, rank=r, world_size=2, batch_size=2, iters_per_visit=2)
             for r in (0, 1)]
    streams = [iter(one), *(iter(s) for s in ranks)]
    for iteration in range(4):
        batch = [next(streams[0]) for _ in range(4)]
        per_rank = [next(streams[r]) for r in (1, 2) for _ in range(2)]
        assert batch == per_rank
        assert [i.seed for i in batch] == [i.seed for i in per_rank] == [
            (7, SAMPLE_STREAM, iteration, slot) for slot in range(4)]


def test_seeded_index_is_an_int_that_keeps_its_seed():
    idx = SeededIndex(5, (7, 1, 2, 3))
    assert idx == 5 and hash(idx) == hash(5) and [10, 11, 12, 13, 14, 15][idx] == 15
    copy = pickle.loads(pickle.dumps(idx))  # to a dataloader worker
    assert isinstance(copy, SeededIndex) and copy == 5 and copy.seed == (7, 1, 2, 3)
    assert repr(idx) == 'SeededIndex(5, seed=(7, 1, 2, 3))'
    assert type(idx % 3) is int  # arithmetic gives plain ints (the sub-datasets' indices)


def test_random_transforms_draw_from_the_sample_generator():
    crop = CXRRandomResizedCrop(scale=8, area_range=(0.2, 1.0))
    with sample_rng((1, 2)) as rng:
        assert current_sample_rng() is rng and crop.rng is rng
        with sample_rng(None) as inner:  # a plain index keeps the current generator
            assert inner is rng
        first = [crop.sample_crop(64, 64) for _ in range(3)]
    assert current_sample_rng() is None
    with sample_rng((1, 2)):
        assert [crop.sample_crop(64, 64) for _ in range(3)] == first
    with sample_rng((1, 3)):
        assert [crop.sample_crop(64, 64) for _ in range(3)] != first
    # outside a sample: the transform's own per-process generator, seeded from np.random
    np.random.seed(0)
    own = crop.rng
    assert own is not None and own is crop.rng and current_sample_rng() is None
