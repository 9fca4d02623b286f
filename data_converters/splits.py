"""Patient-level, seeded splits for datasets without an official (or a complete) split.

A patient's split is a function of ``(seed, patient_id)`` only: the SHA-256 of both is read as
a number ``u`` in [0, 1) and compared with the cumulative split fractions. So

- all images of a patient land in the same split (no leakage);
- the split does not depend on the order of the files or on which other images are present,
  so adding or losing images never moves a patient, a resumed run gives the same split, and
  two converters that share patients (VinDr-CXR findings and its CheXmask organ masks) agree;
- another ``--split-seed`` gives another split.

The fractions are met in expectation (the binomial spread of a random split).
"""
import hashlib
from typing import Dict, Optional

#: the splits a converter may write, in this order
SPLITS = ('train', 'val', 'test')


def patient_unit(patient_id: str, seed: int) -> float:
    """A number in [0, 1) that is uniform over patients and fixed by ``(seed, patient_id)``."""
    digest = hashlib.sha256(f'{seed}:{patient_id}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'big') / 2 ** 64


def assign_split(patient_id: str, official: Optional[str], seed: int,
                 val_fraction: float, test_fraction: float) -> str:
    """The split of one image.

    Args:
        patient_id (str): The image's patient.
        official (str, optional): ``'train'``, ``'val'`` or ``'test'`` when the dataset says
            so; ``'trainval'`` for the official training part, of which ``val_fraction`` of
            the patients go to 'val'; None when the dataset has no split (``test_fraction`` of
            the patients go to 'test', ``val_fraction`` to 'val', the rest to 'train').
        seed (int): The split seed.
        val_fraction (float): Fraction of patients for 'val'.
        test_fraction (float): Fraction of patients for 'test' (without an official split).

    Returns:
        str: One of :data:`SPLITS`.
    """
    if official in SPLITS:
        return official
    u = patient_unit(patient_id, seed)
    if official == 'trainval':
        return 'val' if u < val_fraction else 'train'
    if official is not None:
        raise ValueError(f'unknown official split {official!r}; expected one of '
                         f'{SPLITS + ("trainval", None)}')
    if u < test_fraction:
        return 'test'
    return 'val' if u < test_fraction + val_fraction else 'train'


def check_fractions(val_fraction: float, test_fraction: float) -> Dict[str, float]:
    """Validate the split fractions; returns them as a dict for the run's options."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
            and val_fraction + test_fraction < 1):
        raise ValueError(f'split fractions must be >= 0 with val + test < 1, got '
                         f'val_fraction={val_fraction}, test_fraction={test_fraction}')
    return dict(val_fraction=val_fraction, test_fraction=test_fraction)
