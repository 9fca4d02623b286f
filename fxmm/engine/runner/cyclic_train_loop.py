"""The iteration-based train loop that walks the Foundation X visit cycle and resumes
exactly where it stopped, without replaying data."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop, set_random_seed
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import DataLoader

from fxmm.datasets.samplers.multi_task_sampler import MultiTaskSampler, VisitInfo
from fxmm.registry import LOOPS

# message hub key under which the train sampler's seed travels in checkpoints
SAMPLER_SEED_KEY = 'fxmm.train_sampler_seed'
# ... and the schedule that gives the saved iteration its place in the cycle
SCHEDULE_KEY = 'fxmm.train_schedule'


@LOOPS.register_module()
class CyclicTrainLoop(IterBasedTrainLoop):
    """mmengine's :class:`IterBasedTrainLoop` over a :class:`MultiTaskSampler`, with the
    length given in iterations or in visits, visit bookkeeping, and a free, exact resume.

    - Resume: mmengine replays ``iter`` batches (loading every image) to reach the saved
      position; this loop instead restarts the sampler at the saved iteration
      (:meth:`MultiTaskSampler.set_start_iter`), so it continues at the same pair and
      position at no cost. The sampler's seed is saved in the checkpoint (message hub
      ``'fxmm.train_sampler_seed'``) and restored, so a resumed run sees the same stream
      even when the seed was drawn at random. The iteration means a place in the cycle only
      with the same visit lengths (``ceil(size / (batch_size * world_size))`` or
      ``iters_per_visit``): the checkpoint holds the pairs, visit lengths, batch size and
      number of processes, and a resume with others (e.g. on another number of GPUs) stops
      with an error instead of silently jumping to another visit.
    - Randomness of the step: before every iteration the global RNGs of Python, NumPy and
      torch are seeded from ``(runner.seed, iteration, rank)``, so what the model draws
      (drop path, DINO's de-noising queries) is, like the data, a function of the position:
      a resumed run draws exactly what the uninterrupted run drew, without RNG states in
      the checkpoint, and the ranks draw independently. Random augmentations draw from a
      generator of each sample, seeded by the sampler from ``(seed, iteration, position in
      the global batch)`` (:mod:`fxmm.datasets.sample_rng`), so they resume exactly too,
      whatever the number of dataloader workers.
    - Visits: :attr:`current_visit` is the :class:`VisitInfo` of the iteration being run,
      set before the ``before_train_iter`` hooks. A hook sees a visit start when
      ``iter_in_visit == 0`` (in ``before_train_iter``) and its end when
      ``iter_in_visit == visit_len - 1`` (in ``after_train_iter``). The loop logs
      ``'visit k: pair <name> (<n> iters)'`` at every visit start.

    Args:
        runner (Runner): the runner.
        dataloader (DataLoader | dict): the train dataloader; its sampler must be a
            :class:`MultiTaskSampler` in mode 'cyclic' or 'mixed', with the dataloader's
            ``batch_size`` and no ``batch_sampler``.
        max_iters (int, optional): total training iterations.
        max_visits (int, optional): total visits (cyclic mode), converted to iterations
            with the sampler's schedule. Give exactly one of the two.
        val_begin (int): the iteration that begins validating. Defaults to 1.
        val_interval (int): validation interval in iterations. Defaults to 1000.
        dynamic_intervals (list[tuple[int, int]], optional): ``(milestone, interval)``
            pairs changing ``val_interval`` from the milestone on. Defaults to None.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_iters: Optional[int] = None,
                 max_visits: Optional[int] = None,
                 val_begin: int = 1,
                 val_interval: int = 1000,
                 dynamic_intervals: Optional[List[Tuple[int, int]]] = None) -> None:
        if (max_iters is None) == (max_visits is None):
            raise ValueError('CyclicTrainLoop takes exactly one of max_iters and max_visits, '
                             f'got max_iters={max_iters}, max_visits={max_visits}')
        # max_visits needs the sampler, which the parent builds: set the length after it
        super().__init__(runner, dataloader, max_iters=max_iters or 0, val_begin=val_begin,
                         val_interval=val_interval, dynamic_intervals=dynamic_intervals)
        self.sampler = self._check_sampler(self.dataloader)
        if max_visits is not None:
            self._max_iters = self.sampler.visit_start_iter(max_visits)
        self._current_visit: Optional[VisitInfo] = None
        self._schedule = None

    @staticmethod
    def _check_sampler(dataloader: DataLoader) -> MultiTaskSampler:
        """The dataloader's MultiTaskSampler; TypeError/ValueError when the dataloader
        could mix pairs in a batch."""
        sampler = dataloader.sampler
        if not isinstance(sampler, MultiTaskSampler):
            raise TypeError("CyclicTrainLoop needs train_dataloader.sampler="
                            "dict(type='MultiTaskSampler', ...) and no batch_sampler, got "
                            f'sampler {type(sampler).__name__}, batch_sampler '
                            f'{type(dataloader.batch_sampler).__name__}')
        if sampler.mode == 'sequential':
            raise ValueError("the train sampler's mode must be 'cyclic' or 'mixed', got "
                             "'sequential' (an evaluation mode)")
        if dataloader.batch_size != sampler.batch_size:
            raise ValueError(f'train_dataloader.batch_size ({dataloader.batch_size}) must '
                             f'equal the MultiTaskSampler batch_size ({sampler.batch_size}): '
                             'otherwise batches would straddle two pairs')
        return sampler

    @property
    def current_visit(self) -> Optional[VisitInfo]:
        """VisitInfo: the visit of the iteration being run (None before the first)."""
        return self._current_visit

    def run(self) -> torch.nn.Module:
        """Launch training from the current iteration (0, or the resumed one)."""
        self.runner.call_hook('before_train')
        # In iteration-based training loop, we treat the whole training process
        # as a big epoch and execute the corresponding hook.
        self.runner.call_hook('before_train_epoch')
        self._start_sampler()
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()

            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)

            self._decide_current_val_interval()
            if (self.runner.val_loop is not None
                    and self._iter >= self.val_begin
                    and (self._iter % self.val_interval == 0
                         or self._iter == self._max_iters)):
                self.runner.val_loop.run()

        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        return self.runner.model

    def _start_sampler(self) -> None:
        """Restart the sampler at ``self._iter`` with the checkpoint's seed (on resume),
        record the seed for the next checkpoint, and start the visit schedule."""
        hub = self.runner.message_hub
        schedule = dict(pair_names=list(self.sampler.pair_names),
                        visit_lens=list(self.sampler.visit_lens),
                        batch_size=self.sampler.batch_size, world_size=self.sampler.world_size)
        if self._iter > 0:
            saved = hub.get_info(SCHEDULE_KEY)
            if saved is not None and saved != schedule:
                raise ValueError(
                    f'CyclicTrainLoop: the checkpoint at iteration {self._iter} was trained '
                    f'with {saved}, this run has {schedule}; its iteration would fall at '
                    'another place in the visit cycle. Resume with the same pairs, batch size, '
                    'number of processes and iters_per_visit, or start a new schedule from its '
                    'weights (load_from=<checkpoint> without --resume).')
            saved_seed = hub.get_info(SAMPLER_SEED_KEY)
            if saved_seed is not None and saved_seed != self.sampler.seed:
                print_log(f'train sampler seed {self.sampler.seed} -> {saved_seed} (from '
                          'the resumed checkpoint)', logger='current')
                self.sampler.seed = saved_seed
            self.sampler.set_start_iter(self._iter)
            self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
            print_log(f'train sampler restarted at iteration {self._iter}; no data is '
                      'replayed', logger='current')
        hub.update_info(SAMPLER_SEED_KEY, self.sampler.seed)
        hub.update_info(SCHEDULE_KEY, schedule)
        self._schedule = self.sampler.iter_schedule(self._iter)

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        """Set :attr:`current_visit` (logging a visit start), then run one iteration.

        Args:
            data_batch (Sequence[dict]): the batch of the dataloader.
        """
        info = next(self._schedule)
        if info.iter_in_visit == 0 or self._current_visit is None:
            resumed = (f', from its iteration {info.iter_in_visit}'
                       if info.iter_in_visit else '')
            self.runner.logger.info(f'visit {info.visit}: pair {info.pair_name} '
                                    f'({info.visit_len} iters{resumed})')
        self._current_visit = info
        self._seed_iteration()
        super().run_iter(data_batch)

    def _seed_iteration(self) -> None:
        """Seed the global RNGs for iteration ``self._iter`` from ``(runner.seed, iteration,
        rank)``."""
        entropy = [self.runner.seed, self._iter, get_rank()]
        set_random_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
