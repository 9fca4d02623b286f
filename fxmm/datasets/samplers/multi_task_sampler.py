"""One (dataset, task) pair per batch: the Foundation X visit cycle as a data sampler."""
import bisect
import itertools
import math
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Union

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from fxmm.datasets.sample_rng import SeededIndex
from fxmm.registry import DATA_SAMPLERS

MODES = ('cyclic', 'mixed', 'sequential')
# mixed mode draws the pairs of this many consecutive iterations from one keyed RNG
MIXED_BLOCK = 1024
# second entropy word of the samples' seeds, so that they differ from other seeds derived
# from (seed, iteration, ...), e.g. CyclicTrainLoop's (seed, iteration, rank)
SAMPLE_STREAM = 0x5a4d50  # 'SMP'


def _check_int(value, what: str, minimum: int) -> int:
    """``value`` if it is an int >= ``minimum``, else a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = 'positive' if minimum == 1 else 'non-negative'
        raise ValueError(f'{what} must be a {kind} int, got {value!r}')
    return value


class VisitInfo(NamedTuple):
    """Where a training iteration lies in the schedule.

    A *visit* is a stretch of iterations on one pair (one pass over its data unless
    ``iters_per_visit`` says otherwise). Visit ids are global and unique: visit ``v`` is the
    ``v // N``-th visit of pair ``v % N`` (N pairs). In cyclic mode visits follow each
    other in id order; in mixed mode the iterations of different visits interleave.

    Attributes:
        visit (int): the visit id.
        pair_idx (int): the pair's position in ``dataset.pair_names``.
        pair_name (str): ``'<dataset>.<task>'``.
        task (str): ``'cls'``, ``'loc'`` or ``'seg'``.
        iter_in_visit (int): 0 at the visit's first iteration, ``visit_len - 1`` at its last.
        visit_len (int): the number of iterations of the visit.
    """
    visit: int
    pair_idx: int
    pair_name: str
    task: str
    iter_in_visit: int
    visit_len: int


@DATA_SAMPLERS.register_module()
class MultiTaskSampler(Sampler):
    """Yield this rank's global indices of a :class:`MultiTaskDataset` so that every batch
    holds one (dataset, task) pair and all ranks are on the same pair at the same step.

    The stream is cut into batches by the dataloader, so ``batch_size`` must equal the
    dataloader's ``batch_size`` and no ``batch_sampler`` may be set (``CyclicTrainLoop``
    checks both for training).

    A visit of pair ``p`` lasts ``L_p`` iterations (one pass by default:
    ``ceil(len(p) / (batch_size * world_size))``). Its indices are a seeded permutation of
    the pair (seeded by ``(seed, visit)``, so every visit of a pair is shuffled anew),
    continued by further permutations when ``L_p * batch_size * world_size`` exceeds the
    pair (the wrap-around that pads the last batches), or cut short when it is smaller
    (capped visits). Iteration ``i`` of the visit gives rank ``r`` the block
    ``[(i * world_size + r) * batch_size, ... + batch_size)`` of that sequence, so the
    ranks' shards are disjoint within a visit apart from the padding.

    Modes:

    - ``'cyclic'`` (training): visit ``k`` trains pair ``k % N``; a full cycle (one visit
      per pair) is ``sum(L_p)`` iterations.
    - ``'mixed'`` (training): the pair of each iteration is drawn by ``weights`` from an
      RNG keyed on ``(seed, iteration // MIXED_BLOCK)``; the position inside the pair
      counts that pair's earlier draws, so consecutive draws of a pair walk through its
      visits as in cyclic mode.
    - ``'sequential'`` (evaluation): every pair once, in index order, cut into blocks of
      ``batch_size`` dealt round-robin to the ranks; each pair is padded with repeats of
      its last index to a multiple of ``batch_size * world_size`` (metrics de-duplicate
      by ``sample_idx``). Finite; ``shuffle`` is ignored.

    The training position is a pure function of ``(seed, iteration)``:
    :meth:`schedule` tells where an iteration is, and :meth:`set_start_iter` makes the next
    iterator start at an iteration without touching any data (exact, free resume).

    Every index is yielded as a :class:`~fxmm.datasets.sample_rng.SeededIndex` (an ``int``)
    whose ``seed`` is ``(seed, SAMPLE_STREAM, iteration, slot)``, ``slot`` being its place
    in the global batch (``rank * batch_size + j``); :class:`MultiTaskDataset` seeds the
    sample's random augmentations with it. A sample's augmentation is thus a function of
    where it is trained: the same after a resume, with any ``num_workers``, and the same
    for one process as for the ranks whose batches concatenate to its batch.

    Example:
        >>> train_dataloader = dict(
        ...     batch_size=24,  # must equal the sampler's batch_size
        ...     num_workers=4,
        ...     sampler=dict(type='MultiTaskSampler', batch_size=24, mode='cyclic',
        ...                  iters_per_visit={'mimic.cls': 2000}),
        ...     dataset=dict(type='MultiTaskDataset', pairs=[...]))
        >>> train_cfg = dict(type='CyclicTrainLoop', max_visits=3000)

    Args:
        dataset (MultiTaskDataset): the pairs to sample (``pair_names``, ``tasks``,
            ``cumulative_sizes``, ``weights``).
        batch_size (int): samples per batch on each rank; equal to the dataloader's.
        mode (str): ``'cyclic'``, ``'mixed'`` or ``'sequential'``. Defaults to 'cyclic'.
        iters_per_visit (int | dict, optional): None = one pass per visit; an int sets the
            length of every visit (capping large pairs, repeating small ones); a dict
            ``pair name -> int`` sets it per pair (others: one pass). Not for sequential.
        weights (Sequence[float] | dict, optional): mixed mode only; the relative draw
            frequency of each pair (a list in pair order, or ``pair name -> weight``
            overriding the pairs' own). None = the pairs' ``weight``. Defaults to None.
        shuffle (bool): shuffle the pair's indices in each visit. Defaults to True.
        seed (int, optional): non-negative seed, identical on all ranks; None = a random
            seed synchronised across ranks (``mmengine.dist.sync_random_seed``).
    """

    def __init__(self,
                 dataset,
                 batch_size: int,
                 mode: str = 'cyclic',
                 iters_per_visit: Union[int, Dict[str, int], None] = None,
                 weights: Union[Sequence[float], Dict[str, float], None] = None,
                 shuffle: bool = True,
                 seed: Optional[int] = None) -> None:
        missing = [a for a in ('pair_names', 'tasks', 'cumulative_sizes', 'weights')
                   if not hasattr(dataset, a)]
        if missing:
            raise TypeError(f'MultiTaskSampler needs a MultiTaskDataset, got '
                            f'{type(dataset).__name__} (it lacks {missing})')
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        _check_int(batch_size, 'batch_size', 1)
        if mode == 'sequential' and iters_per_visit is not None:
            raise ValueError("iters_per_visit does not apply to mode='sequential'")
        if mode != 'mixed' and weights is not None:
            raise ValueError(f"weights apply to mode='mixed' only, got mode={mode!r}")
        if seed is None:
            seed = sync_random_seed()
        _check_int(seed, 'seed', 0)
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.batch_size = batch_size
        self.mode = mode
        self.shuffle = shuffle
        self.seed = seed
        self.pair_names: List[str] = list(dataset.pair_names)
        self.tasks: List[str] = list(dataset.tasks)
        ends = list(dataset.cumulative_sizes)
        self.offsets = [0] + ends[:-1]
        self.sizes = [end - offset for end, offset in zip(ends, self.offsets)]
        self.visit_lens = self._visit_lens(iters_per_visit)
        self._visit_ends = list(itertools.accumulate(self.visit_lens))
        self.probs = self._pair_probs(weights) if mode == 'mixed' else None
        self._start_iter = 0

    def _visit_lens(self, iters_per_visit: Union[int, Dict[str, int], None]) -> List[int]:
        """Iterations of one visit of each pair."""
        one_pass = [math.ceil(size / (self.batch_size * self.world_size))
                    for size in self.sizes]
        if iters_per_visit is None:
            return one_pass
        if isinstance(iters_per_visit, dict):
            unknown = sorted(set(iters_per_visit) - set(self.pair_names))
            if unknown:
                raise ValueError(f'iters_per_visit names unknown pair(s) {unknown}; the pairs '
                                 f'are {self.pair_names}')
            lens = [iters_per_visit.get(name, one) for name, one in zip(self.pair_names, one_pass)]
        else:
            lens = [iters_per_visit] * len(self.pair_names)
        for name, n in zip(self.pair_names, lens):
            _check_int(n, f'iters_per_visit of {name!r}', 1)
        return lens

    def _pair_probs(self, weights: Union[Sequence[float], Dict[str, float], None]
                    ) -> np.ndarray:
        """Normalised draw probabilities of the pairs (mixed mode), shape (N,)."""
        if weights is None:
            values = list(self.dataset.weights)
        elif isinstance(weights, dict):
            unknown = sorted(set(weights) - set(self.pair_names))
            if unknown:
                raise ValueError(f'weights name unknown pair(s) {unknown}; the pairs are '
                                 f'{self.pair_names}')
            values = [weights.get(name, own)
                      for name, own in zip(self.pair_names, self.dataset.weights)]
        else:
            values = list(weights)
            if len(values) != len(self.pair_names):
                raise ValueError(f'weights has {len(values)} values for '
                                 f'{len(self.pair_names)} pairs {self.pair_names}')
        probs = np.asarray(values, dtype=np.float64)
        if not (np.all(np.isfinite(probs)) and np.all(probs >= 0) and probs.sum() > 0):
            raise ValueError(f'weights must be finite, >= 0 and not all 0, got {values}')
        return probs / probs.sum()

    @property
    def iters_per_cycle(self) -> int:
        """int: iterations of one visit of every pair (the whole of sequential mode)."""
        return self._visit_ends[-1]

    def visit_start_iter(self, visit: int) -> int:
        """The iteration at which ``visit`` starts (cyclic and sequential modes).

        ``visit_start_iter(k)`` is also the number of iterations of the first ``k`` visits,
        which converts a budget in visits to iterations.
        """
        if self.mode == 'mixed':
            raise ValueError("visits interleave in mode='mixed': they have no start iteration "
                             '(count such training in iterations)')
        _check_int(visit, 'visit', 0)
        cycle, pair = divmod(visit, len(self.pair_names))
        return cycle * self.iters_per_cycle + self._visit_ends[pair] - self.visit_lens[pair]

    def _visit_info(self, pair: int, count: int) -> VisitInfo:
        """The VisitInfo of the ``count``-th iteration (from 0) spent on ``pair``."""
        visit_len = self.visit_lens[pair]
        nth_visit, iter_in_visit = divmod(count, visit_len)
        return VisitInfo(nth_visit * len(self.pair_names) + pair, pair, self.pair_names[pair],
                         self.tasks[pair], iter_in_visit, visit_len)

    def _mixed_block(self, block: int) -> np.ndarray:
        """Pairs drawn for iterations ``block * MIXED_BLOCK`` onwards, shape (MIXED_BLOCK,)."""
        rng = np.random.default_rng((self.seed, block))
        return rng.choice(len(self.pair_names), size=MIXED_BLOCK, p=self.probs)

    def iter_schedule(self, start: int = 0) -> Iterator[VisitInfo]:
        """Endless :class:`VisitInfo` of iterations ``start, start + 1, ...``.

        Costs O(start / MIXED_BLOCK) vectorised draws to begin in mixed mode, O(1) else.
        """
        if self.mode == 'mixed':
            return self._mixed_schedule(start)
        return self._cyclic_schedule(start)

    def _cyclic_schedule(self, start: int) -> Iterator[VisitInfo]:
        """Visit ``k`` is pair ``k % N`` for ``visit_lens[k % N]`` iterations."""
        for iteration in itertools.count(start):
            cycle, rest = divmod(iteration, self.iters_per_cycle)
            pair = bisect.bisect_right(self._visit_ends, rest)
            in_cycle = rest - (self._visit_ends[pair] - self.visit_lens[pair])
            yield self._visit_info(pair, cycle * self.visit_lens[pair] + in_cycle)

    def _mixed_schedule(self, start: int) -> Iterator[VisitInfo]:
        """Pairs drawn per iteration; a pair's position counts its earlier draws."""
        num_pairs = len(self.pair_names)
        first_block, skip = divmod(start, MIXED_BLOCK)
        counts = np.zeros(num_pairs, dtype=np.int64)  # earlier draws of each pair
        for block in range(first_block):
            counts += np.bincount(self._mixed_block(block), minlength=num_pairs)
        for block in itertools.count(first_block):
            draws = self._mixed_block(block)
            counts += np.bincount(draws[:skip], minlength=num_pairs)
            for pair in draws[skip:].tolist():
                yield self._visit_info(pair, int(counts[pair]))
                counts[pair] += 1
            skip = 0

    def schedule(self, iteration: int) -> VisitInfo:
        """Where ``iteration`` lies: visit, pair, and position inside the visit."""
        return next(self.iter_schedule(_check_int(iteration, 'iteration', 0)))

    def set_start_iter(self, iteration: int) -> None:
        """Make the next iterator start at ``iteration`` (e.g. the resumed one).

        Nothing is loaded or drawn for the skipped iterations.
        """
        self._start_iter = _check_int(iteration, 'iteration', 0)

    def _visit_indices(self, info: VisitInfo) -> np.ndarray:
        """All ranks' global indices of one visit, in batch order, shape
        (visit_len * batch_size * world_size,)."""
        pair = info.pair_idx
        size = self.sizes[pair]
        total = info.visit_len * self.batch_size * self.world_size
        if self.mode == 'sequential':
            local = np.concatenate([np.arange(size), np.full(total - size, size - 1)])
        elif self.shuffle:
            rng = np.random.default_rng((self.seed, info.visit))
            local = np.concatenate(
                [rng.permutation(size) for _ in range(math.ceil(total / size))])[:total]
        else:
            local = np.resize(np.arange(size), total)
        return local + self.offsets[pair]

    def __iter__(self) -> Iterator[int]:
        """This rank's indices (:class:`SeededIndex`) from the start iteration: endless, or
        in sequential mode to the end of the single cycle."""
        schedule = self.iter_schedule(self._start_iter)
        if self.mode == 'sequential':
            schedule = itertools.islice(schedule, max(self.iters_per_cycle - self._start_iter, 0))
        current = {}  # pair -> (visit, its indices) of the visit in progress
        first_slot = self.rank * self.batch_size
        for iteration, info in enumerate(schedule, self._start_iter):
            visit, indices = current.get(info.pair_idx, (None, None))
            if visit != info.visit:
                indices = self._visit_indices(info)
                current[info.pair_idx] = (info.visit, indices)
            begin = (info.iter_in_visit * self.world_size + self.rank) * self.batch_size
            for slot, index in enumerate(indices[begin:begin + self.batch_size].tolist(),
                                         first_slot):
                yield SeededIndex(index, (self.seed, SAMPLE_STREAM, iteration, slot))

    def __len__(self) -> int:
        """Indices per full cycle on this rank (``iters_per_cycle * batch_size``): in
        sequential mode all it yields, in the endless modes one nominal "epoch", which is
        what ``len(dataloader)`` (and ``convert_to_iter_based`` schedulers) then count."""
        return self.iters_per_cycle * self.batch_size

    def set_epoch(self, epoch: int) -> None:
        """Has no effect: the stream is a function of ``(seed, iteration)``, set by
        :meth:`set_start_iter` (mmengine's ``InfiniteSampler`` does the same)."""
