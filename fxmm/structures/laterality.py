"""Left/right class pairs: which class names name a body side, and the relabelling a
horizontal flip of a frontal chest X-ray applies to a class list.

On a frontal chest X-ray the patient's right side appears on the image's left; mirroring the
image turns every lateral label into its partner's (``CXRRandomFlip`` in training, the mirrored
views of ``TenCropTTA`` at test time).
"""
import re
from functools import lru_cache
from typing import Sequence, Tuple

# Words of a class name: 'LeftLung' -> Left, Lung; 'left_clavicle' -> left, clavicle;
# 'R10' -> R, 10.
_WORD = re.compile(r'[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+')
# Words (lower-cased) that make a class name lateral: VinDr-RibCXR names ribs 'R1'...'L10'.
LATERAL_WORDS = frozenset({'left', 'right', 'l', 'r'})
# left/right pairs of class names, as normalise_lr_pairs returns them
LrPairs = Tuple[Tuple[str, str], ...]


def is_lateral(name: str) -> bool:
    """Whether a class name names a body side.

    True when one of its words is 'left' or 'right' (any case) or the single letter 'L' or
    'R', e.g. 'Left Lung', 'right_clavicle', 'LeftLung', 'R1'; false for 'Lung', 'Bright'.
    """
    return any(word.lower() in LATERAL_WORDS for word in _WORD.findall(name))


def normalise_lr_pairs(pairs: Sequence[Sequence[str]], source: str) -> LrPairs:
    """Check ``pairs`` (``[[left_name, right_name], ...]``) and return them as tuples.

    Raises:
        ValueError: naming ``source`` when a pair is not two different names or a name is in
            two pairs.
    """
    seen, out = set(), []
    for pair in pairs:
        if (isinstance(pair, str) or len(pair) != 2 or not all(isinstance(n, str) for n in pair)
                or pair[0] == pair[1]):
            raise ValueError(f'{source}: every entry must be [left_name, right_name] with two '
                             f'different class names, got {pair!r}')
        twice = seen.intersection(pair)
        if twice:
            raise ValueError(f'{source}: class {sorted(twice)} appears in more than one pair')
        seen.update(pair)
        out.append((pair[0], pair[1]))
    return tuple(out)


@lru_cache(maxsize=128)
def lr_permutation(classes: Tuple[str, ...],
                   pairs: LrPairs) -> Tuple[Tuple[int, ...], Tuple[str, ...]]:
    """The class permutation a horizontal flip applies to one class list.

    Args:
        classes (tuple[str]): the class names, in label order.
        pairs (tuple[tuple[str, str]]): the left/right pairs (checked by
            :func:`normalise_lr_pairs`).

    Returns:
        tuple: ``perm`` (tuple[int], length len(classes)): label ``i`` becomes ``perm[i]``
        (an involution); ``unpaired`` (tuple[str]): classes that are lateral, or named in a
        pair, but whose partner is not in ``classes``; they keep their index in ``perm``.
    """
    index = {name: i for i, name in enumerate(classes)}
    partner = {a: b for pair in pairs for a, b in (pair, pair[::-1])}
    perm = list(range(len(classes)))
    unpaired = []
    for name, i in index.items():
        if partner.get(name) in index:
            perm[i] = index[partner[name]]
        elif name in partner or is_lateral(name):
            unpaired.append(name)
    return tuple(perm), tuple(unpaired)
