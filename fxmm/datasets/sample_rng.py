"""Per-sample random generators: random augmentations as a function of the sample's place in
training, so that a resumed run, and any number of dataloader workers, draw what an
uninterrupted single-process run draws.

:class:`~fxmm.datasets.samplers.MultiTaskSampler` yields :class:`SeededIndex` es, indices that
carry a seed derived from ``(sampler seed, iteration, position in the global batch)``.
:class:`~fxmm.datasets.MultiTaskDataset` runs the sample's pipeline inside
:func:`sample_rng` with that seed, and fxmm's random transforms
(:class:`~fxmm.datasets.transforms.geometric.LocalRandomTransform`) draw from
:func:`current_sample_rng` when one is set.
"""
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional, Sequence

import numpy as np

# the generator of the sample being loaded (one per thread / context), None outside
_SAMPLE_RNG: ContextVar[Optional[np.random.Generator]] = ContextVar('fxmm_sample_rng',
                                                                   default=None)


class SeededIndex(int):
    """A dataset index (an ``int``) that also carries the seed of its sample's randomness.

    It compares, hashes and indexes as the plain index, so datasets and code that know
    nothing of the seed use it as an ``int``.

    Args:
        index (int): the index.
        seed (Sequence[int]): entropy for :func:`numpy.random.default_rng`, e.g.
            ``(seed, stream, iteration, slot)``.
    """

    def __new__(cls, index: int, seed: Sequence[int]) -> 'SeededIndex':
        obj = super().__new__(cls, index)
        obj.seed = tuple(int(s) for s in seed)
        return obj

    def __reduce__(self):
        # to dataloader workers: int's own pickling would drop the seed
        return type(self), (int(self), self.seed)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed})'


@contextmanager
def sample_rng(seed: Optional[Sequence[int]]) -> Iterator[Optional[np.random.Generator]]:
    """Make a fresh generator seeded by ``seed`` the current sample's generator inside the
    ``with`` block; ``seed=None`` leaves the current one (usually none) in place.

    Args:
        seed (Sequence[int], optional): entropy for :func:`numpy.random.default_rng`.

    Yields:
        np.random.Generator | None: the current sample generator.
    """
    if seed is None:
        yield _SAMPLE_RNG.get()
        return
    rng = np.random.default_rng(seed)
    token = _SAMPLE_RNG.set(rng)
    try:
        yield rng
    finally:
        _SAMPLE_RNG.reset(token)


def current_sample_rng() -> Optional[np.random.Generator]:
    """np.random.Generator | None: the generator of the sample being loaded, if any."""
    return _SAMPLE_RNG.get()
