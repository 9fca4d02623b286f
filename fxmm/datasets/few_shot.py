"""Seeded few-shot subsets of a dataset split that never split a patient.

Foundation X's few-shot experiment (JSRT clavicles with 3, 6, 12 and 24 training images)
trains on small subsets of a train split; results are compared across several seeds, so a
subset must be a pure function of ``(images, N, seed)``. ``CXRDataset(num_samples=N,
subset_seed=s)`` applies :func:`few_shot_indices` to its (filtered) entries.
"""
from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np

# patients named in the log line of a subset, at most
_LOGGED_PATIENTS = 24


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def group_by_patient(data_list: Sequence[dict]) -> Dict[str, List[int]]:
    """Indices of ``data_list`` per patient.

    Args:
        data_list (Sequence[dict]): dataset entries; ``patient_id`` (str) where known, else
            the entry is its own patient, keyed by its ``img_path``.

    Returns:
        dict[str, list[int]]: patient key -> indices of that patient's images, in order.
    """
    groups = defaultdict(list)
    for index, entry in enumerate(data_list):
        patient = entry.get('patient_id')
        groups[f'patient:{patient}' if patient is not None
               else f'image:{entry["img_path"]}'].append(index)
    return dict(groups)


def few_shot_indices(data_list: Sequence[dict],
                     num_samples: int,
                     seed: int = 0,
                     source: str = 'dataset') -> List[int]:
    """Pick ``num_samples`` images of whole patients, as a function of the seed.

    The patients are put in a random order drawn from ``np.random.default_rng(seed)`` over
    their sorted keys (so the order of the entries in the file does not matter), then taken
    in that order, each with all of its images, skipping a patient only when taking it would
    leave no way to reach exactly ``num_samples`` images with the patients after it. When
    every patient has one image, the subset for N is the first N patients of the seed's
    order: the subsets of one seed are nested (3 in 6 in 12 in 24).

    Args:
        data_list (Sequence[dict]): the split's entries (``img_path``, optional
            ``patient_id``).
        num_samples (int): images in the subset, 1 to ``len(data_list)``.
        seed (int): seed of the patient order, >= 0. Defaults to 0.
        source (str): names the split in error messages (e.g. the annotation file).

    Returns:
        list[int]: indices into ``data_list`` of the chosen images, ascending.

    Raises:
        ValueError: ``num_samples`` or ``seed`` out of range, or no set of whole patients
            has exactly ``num_samples`` images.
    """
    if not _is_count(num_samples) or not 1 <= num_samples <= len(data_list):
        raise ValueError(f'{source}: num_samples must be an int in [1, {len(data_list)}] (the '
                         f'images of the split), got {num_samples!r}')
    if not _is_count(seed) or seed < 0:
        raise ValueError(f'{source}: subset_seed must be an int >= 0, got {seed!r}')
    groups = group_by_patient(data_list)
    keys = sorted(groups)
    patients = [groups[keys[i]] for i in np.random.default_rng(seed).permutation(len(keys))]
    # reachable[k]: bit n is set iff some of patients[k:] have n images together (n <= N)
    mask = (1 << (num_samples + 1)) - 1
    reachable = [1] * (len(patients) + 1)
    for k in range(len(patients) - 1, -1, -1):
        reachable[k] = (reachable[k + 1] | reachable[k + 1] << len(patients[k])) & mask
    if not reachable[0] >> num_samples & 1:
        sizes = sorted({len(images) for images in patients})
        raise ValueError(f'{source}: cannot pick exactly {num_samples} images of whole '
                         f'patients: the patients have {sizes} images each; choose another '
                         'num_samples')
    chosen: List[int] = []
    for k, images in enumerate(patients):
        left = num_samples - len(chosen) - len(images)
        if left >= 0 and reachable[k + 1] >> left & 1:
            chosen.extend(images)
            if not left:
                break
    return sorted(chosen)


def describe_subset(data_list: Sequence[dict], indices: Sequence[int], seed: int) -> str:
    """One log line naming a subset's patients (or images), for reproducibility.

    Args:
        data_list (Sequence[dict]): the split's entries.
        indices (Sequence[int]): the subset, from :func:`few_shot_indices`.
        seed (int): the subset's seed.

    Returns:
        str: e.g. ``'few-shot subset (seed 0): 3 of 112 images, 3 patients: JPCLN004, ...'``.
    """
    groups = group_by_patient([data_list[i] for i in indices])
    names = sorted(key.split(':', 1)[1] for key in groups)
    shown = ', '.join(names[:_LOGGED_PATIENTS])
    more = f', ... ({len(names) - _LOGGED_PATIENTS} more)' if len(names) > _LOGGED_PATIENTS else ''
    return (f'few-shot subset (seed {seed}): {len(indices)} of {len(data_list)} images, '
            f'{len(groups)} patients: {shown}{more}')
