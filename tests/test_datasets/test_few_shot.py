"""Few-shot subsets: a pure function of (images, N, seed), whole patients, exactly N images."""
import json
import random

import pytest

from fxmm.datasets.cxr_dataset import ANNOTATION_VERSION, CXRDataset
from fxmm.datasets.few_shot import describe_subset, few_shot_indices, group_by_patient


def _entries(sizes, with_patient=True):
    """One entry per image; patient ``p{i:02d}`` has ``sizes[i]`` images."""
    entries = []
    for patient, size in enumerate(sizes):
        for image in range(size):
            entry = dict(img_path=f'p{patient:02d}_{image}.png', height=8, width=8)
            if with_patient:
                entry['patient_id'] = f'p{patient:02d}'
            entries.append(entry)
    return entries


# 30 images of 20 patients: 12 with one image, 6 with two, 2 with three
SIZES = [1, 2, 1, 3, 1, 1, 2, 1, 2, 1, 1, 3, 1, 2, 1, 1, 2, 1, 2, 1]
ENTRIES = _entries(SIZES)


def _paths(indices, entries=ENTRIES):
    return sorted(entries[i]['img_path'] for i in indices)


@pytest.mark.parametrize('num', [3, 6, 12, 24, 29])
def test_exactly_n_images_of_whole_patients(num):
    groups = group_by_patient(ENTRIES)
    for seed in range(20):
        chosen = set(few_shot_indices(ENTRIES, num, seed))
        assert len(chosen) == num
        for images in groups.values():
            # a patient is all in or all out
            assert set(images) <= chosen or not set(images) & chosen


def test_same_seed_same_images_other_seed_other_images():
    first = few_shot_indices(ENTRIES, 6, seed=0)
    assert few_shot_indices(ENTRIES, 6, seed=0) == first
    assert first == sorted(first)
    subsets = {tuple(few_shot_indices(ENTRIES, 6, seed)) for seed in range(5)}
    assert len(subsets) == 5
    # the patients' order comes from np.random.default_rng(0).permutation over the sorted
    # keys; pinned so that a change of the selection rule shows up here
    # (seed 0: p04, p19, p06 (2 images), p02 make 5; p13, p16 (2), p03, p11 (3) would pass
    # 6; p10 makes 6)
    assert _paths(first) == ['p02_0.png', 'p04_0.png', 'p06_0.png', 'p06_1.png', 'p10_0.png',
                             'p19_0.png']


def test_order_of_the_file_does_not_matter():
    shuffled = list(ENTRIES)
    random.Random(3).shuffle(shuffled)
    for seed in (0, 1, 2):
        assert (_paths(few_shot_indices(shuffled, 12, seed), shuffled)
                == _paths(few_shot_indices(ENTRIES, 12, seed)))


def test_single_image_patients_give_nested_subsets():
    entries = _entries([1] * 30)
    for seed in (0, 7):
        subsets = [set(_paths(few_shot_indices(entries, n, seed), entries))
                   for n in (3, 6, 12, 24)]
        assert all(small < large for small, large in zip(subsets, subsets[1:]))


def test_entries_without_patient_are_their_own_patient():
    entries = _entries([2] * 5, with_patient=False)
    # two images of one "patient" p00 without ids can be separated: each image is a group
    chosen = few_shot_indices(entries, 3, seed=0)
    assert len(chosen) == 3
    assert len(group_by_patient(entries)) == 10


def test_bad_requests_name_the_split():
    with pytest.raises(ValueError, match=r'train.json: num_samples must be an int in \[1, 30\]'):
        few_shot_indices(ENTRIES, 31, 0, source='train.json')
    with pytest.raises(ValueError, match='num_samples'):
        few_shot_indices(ENTRIES, 0, 0)
    with pytest.raises(ValueError, match='subset_seed must be an int >= 0'):
        few_shot_indices(ENTRIES, 3, -1)
    # every patient has two images: no odd number of images is made of whole patients
    with pytest.raises(ValueError, match=r'cannot pick exactly 3 images .* \[2\] images each'):
        few_shot_indices(_entries([2] * 5), 3, 0)


def test_describe_subset_names_the_patients():
    indices = few_shot_indices(ENTRIES, 6, seed=0)
    assert describe_subset(ENTRIES, indices, 0) == (
        'few-shot subset (seed 0): 6 of 30 images, 5 patients: p02, p04, p06, p10, p19')


def test_cxr_dataset_keeps_the_subset(tmp_path):
    ann = dict(metainfo=dict(dataset='toy', tasks=['seg'], seg_classes=['heart'],
                             converter_version=ANNOTATION_VERSION),
               data_list=ENTRIES)
    ann_file = tmp_path / 'train.json'
    ann_file.write_text(json.dumps(ann))

    def subset(**kwargs):
        dataset = CXRDataset(str(ann_file), data_root=str(tmp_path), **kwargs)
        return sorted(dataset.get_data_info(i)['img_path'].rsplit('/', 1)[-1]
                      for i in range(len(dataset)))

    assert len(subset()) == 30
    for seed in (0, 1):
        expected = _paths(few_shot_indices(ENTRIES, 12, seed))
        assert subset(num_samples=12, subset_seed=seed) == expected
    assert subset(num_samples=12, subset_seed=0) != subset(num_samples=12, subset_seed=1)
    with pytest.raises(ValueError, match='train.json: num_samples'):
        subset(num_samples=40)
