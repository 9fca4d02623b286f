"""A concatenation of (dataset, task) pairs: the training set of Foundation X."""
import bisect
import copy
import inspect
import itertools
import math
from typing import List, Sequence, Tuple, Union

from mmengine.dataset.base_dataset import force_full_init
from torch.utils.data import Dataset

from fxmm.registry import DATASETS
from fxmm.structures import CLASS_KEYS, check_task, pair_name
from .cxr_dataset import MISSING_ANN_FILE_HINT
from .sample_rng import sample_rng

# The keys a pair dict may have.
PAIR_KEYS = ('dataset', 'task', 'name', 'weight')


def _accepts(dataset_type: Union[str, type], arg: str) -> bool:
    """Whether the dataset class named by ``dataset_type`` takes the argument ``arg``."""
    cls = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else dataset_type
    return inspect.isclass(cls) and arg in inspect.signature(cls).parameters


@DATASETS.register_module()
class MultiTaskDataset(Dataset):
    """A concatenation of (dataset, task) pairs; every pair keeps its own pipeline.

    Global index ``i`` belongs to the pair ``p`` with
    ``cumulative_sizes[p - 1] <= i < cumulative_sizes[p]``. Items come from the pair's
    dataset (its pipeline packs them), and the packed data sample's metainfo gets the
    pair's ``dataset`` name, its ``task`` and ``sample_idx`` = the *global* index, so
    metrics and logs can tell pairs and samples apart. Use it with
    :class:`~fxmm.datasets.samplers.MultiTaskSampler`, which keeps every batch inside one
    pair.

    Example:
        >>> dataset = dict(
        ...     type='MultiTaskDataset',
        ...     pairs=[
        ...         dict(dataset=dict(type='CXRDataset', ann_file='siim/train.json',
        ...                           pipeline=seg_pipeline), task='seg'),
        ...         dict(dataset=dict(type='CXRDataset', ann_file='siim/train.json',
        ...                           pipeline=cls_pipeline), task='cls', weight=0.5),
        ...     ])

    Args:
        pairs (Sequence[dict]): one dict per pair with keys

            - ``dataset`` (dict | Dataset): the dataset config (built with
              ``DATASETS.build``; when its class takes a ``task`` argument, as
              ``CXRDataset`` does, the pair's task is passed to it, and when it takes
              ``lazy_init``, the config gets ``lazy_init=True`` unless it sets it, so that
              :meth:`full_init` loads every pair and names all missing annotation files
              in one error) or a built dataset.
            - ``task`` (str): one of ``'cls'``, ``'loc'``, ``'seg'``.
            - ``name`` (str, optional): the dataset part of the pair name; defaults to
              ``dataset.metainfo['dataset']``.
            - ``weight`` (float): how often ``MultiTaskSampler(mode='mixed')`` draws the
              pair, relative to the others. Defaults to 1.0.
        lazy_init (bool): if True, the pairs are not indexed, nor the sub-datasets fully
            initialised (their annotation files read), until :meth:`full_init` or the
            first access that needs it. Defaults to False.
    """

    def __init__(self, pairs: Sequence[dict], lazy_init: bool = False) -> None:
        if not pairs:
            raise ValueError('MultiTaskDataset needs at least one (dataset, task) pair')
        self.datasets: List[Dataset] = []
        self.tasks: List[str] = []
        self.weights: List[float] = []
        self._names: List[Union[str, None]] = []
        for i, pair in enumerate(pairs):
            unknown = sorted(set(pair) - set(PAIR_KEYS))
            if unknown:
                raise ValueError(f'pair {i}: unknown key(s) {unknown}; a pair takes {PAIR_KEYS}')
            if 'dataset' not in pair or 'task' not in pair:
                raise ValueError(f'pair {i} needs `dataset` and `task`, got keys {sorted(pair)}')
            task = check_task(pair['task'])
            weight = float(pair.get('weight', 1.0))
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f'pair {i}: `weight` must be a finite number >= 0, got {weight}')
            self.datasets.append(self._build_dataset(pair['dataset'], task, i))
            self.tasks.append(task)
            self.weights.append(weight)
            self._names.append(pair.get('name'))
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @staticmethod
    def _build_dataset(dataset: Union[dict, Dataset], task: str, i: int) -> Dataset:
        """Build pair ``i``'s dataset, passing ``task`` and ``lazy_init=True`` (unless the
        config sets it) where the dataset class takes them."""
        if not isinstance(dataset, dict):
            own_task = getattr(dataset, 'task', task)
            if own_task != task:
                raise ValueError(f'pair {i}: the given dataset has task {own_task!r} but the '
                                 f'pair says {task!r}')
            return dataset
        cfg = copy.deepcopy(dataset)
        if cfg.get('task', task) != task:
            raise ValueError(f"pair {i}: the dataset config has task={cfg['task']!r} but the "
                             f'pair says {task!r}')
        if 'type' in cfg and _accepts(cfg['type'], 'task'):
            cfg['task'] = task
        if 'type' in cfg and _accepts(cfg['type'], 'lazy_init'):
            cfg.setdefault('lazy_init', True)
        return DATASETS.build(cfg)

    def full_init(self) -> None:
        """Fully initialise every sub-dataset, then name the pairs and index them.

        Raises:
            FileNotFoundError: naming every missing annotation file (each with its pairs),
                once all pairs were tried.
            ValueError: if two pairs get the same name, a pair has no dataset name, or a
                pair is empty.
        """
        if self._fully_initialized:
            return
        missing = {}  # which file is missing -> the pairs that need it
        for i, dataset in enumerate(self.datasets):
            if hasattr(dataset, 'full_init'):
                try:
                    dataset.full_init()
                except FileNotFoundError as err:
                    what = getattr(err, 'what', str(err))
                    missing.setdefault(what, []).append(f'{i} ({self.tasks[i]})')
        if missing:
            lines = [f'  pair{"s" if len(pairs) > 1 else ""} {", ".join(pairs)}: {what}'
                     for what, pairs in missing.items()]
            raise FileNotFoundError(
                f'{len(missing)} annotation file(s) not found, needed by '
                f'{sum(map(len, missing.values()))} of the {len(self.datasets)} pairs. '
                f'{MISSING_ANN_FILE_HINT}:\n' + '\n'.join(lines))
        self._dataset_names = [self._dataset_name(i) for i in range(len(self.datasets))]
        self._pair_names = [pair_name(name, task)
                            for name, task in zip(self._dataset_names, self.tasks)]
        duplicates = sorted({n for n in self._pair_names if self._pair_names.count(n) > 1})
        if duplicates:
            raise ValueError(f'duplicate pair name(s) {duplicates}: give the pairs distinct '
                             '`name`s or drop the repeated (dataset, task) pair')
        sizes = [len(dataset) for dataset in self.datasets]
        for name, size, dataset in zip(self._pair_names, sizes, self.datasets):
            if size == 0:
                raise ValueError(f"pair {name!r} is empty (ann_file="
                                 f"{getattr(dataset, 'ann_file', None)!r}): check the "
                                 'annotation file and the dataset filters')
        self._cumulative_sizes = list(itertools.accumulate(sizes))
        self._fully_initialized = True

    def _dataset_name(self, i: int) -> str:
        """The dataset part of pair ``i``'s name: its ``name`` or its metainfo's ``dataset``."""
        if self._names[i] is not None:
            return self._names[i]
        name = (getattr(self.datasets[i], 'metainfo', None) or {}).get('dataset')
        if not name:
            raise ValueError(f"pair {i}: the dataset's metainfo has no 'dataset' name "
                             f"({type(self.datasets[i]).__name__}); set the pair's `name`")
        return name

    @property
    @force_full_init
    def pair_names(self) -> List[str]:
        """list[str]: ``'<dataset>.<task>'`` of every pair, in order."""
        return list(self._pair_names)

    @property
    @force_full_init
    def cumulative_sizes(self) -> List[int]:
        """list[int]: the global index one past each pair's last sample."""
        return list(self._cumulative_sizes)

    @property
    @force_full_init
    def metainfo(self) -> dict:
        """dict: ``pair_names``, ``tasks``, ``classes`` (pair name -> the class names of the
        pair's task, from the sub-dataset's ``cls_classes`` / ``det_classes`` /
        ``seg_classes``, else its ``classes``) and ``datasets`` (dataset name -> its three
        class lists and ``lr_pairs``), which metrics and visualisers read."""
        classes, datasets = {}, {}
        for i, (name, task, dataset) in enumerate(
                zip(self._pair_names, self.tasks, self.datasets)):
            meta = getattr(dataset, 'metainfo', None) or {}
            classes[name] = list(meta.get(CLASS_KEYS[task], meta.get('classes', ())))
            datasets.setdefault(self._dataset_name(i), {
                key: list(meta.get(key, ()))
                for key in (*CLASS_KEYS.values(), 'lr_pairs')
            })
        return dict(pair_names=list(self._pair_names), tasks=list(self.tasks),
                    classes=classes, datasets=datasets)

    @force_full_init
    def __len__(self) -> int:
        return self._cumulative_sizes[-1]

    @force_full_init
    def pair_index(self, idx: int) -> Tuple[int, int]:
        """Map a global index to ``(pair, local index)``.

        Args:
            idx (int): global index; negative values count from the end.

        Returns:
            tuple[int, int]: the pair's position in :attr:`pair_names` and the index inside
            its dataset.
        """
        idx = self._global_index(idx)
        pair = bisect.bisect_right(self._cumulative_sizes, idx)
        offset = self._cumulative_sizes[pair - 1] if pair > 0 else 0
        return pair, idx - offset

    def _global_index(self, idx: int) -> int:
        """``idx`` as a non-negative global index; IndexError when out of range."""
        size = len(self)
        if not -size <= idx < size:
            raise IndexError(f'index {idx} out of range for a MultiTaskDataset of {size} '
                             'samples')
        return idx % size

    @force_full_init
    def __getitem__(self, idx: int) -> dict:
        """The packed sample of global index ``idx`` from its pair's pipeline.

        When ``idx`` is a :class:`~fxmm.datasets.sample_rng.SeededIndex` (what
        ``MultiTaskSampler`` yields), the pipeline runs inside
        :func:`~fxmm.datasets.sample_rng.sample_rng` with its seed, so fxmm's random
        transforms draw from a generator of this sample alone.

        Returns:
            dict: the pipeline's output, ``inputs`` and ``data_samples``; the data
            sample's metainfo ``dataset``, ``task`` and ``sample_idx`` (global) are set.
        """
        pair, local = self.pair_index(idx)
        with sample_rng(getattr(idx, 'seed', None)):
            data = self.datasets[pair][local]
        name = self._pair_names[pair]
        samples = data.get('data_samples') if isinstance(data, dict) else None
        if not hasattr(samples, 'set_metainfo'):
            raise TypeError(f"pair {name!r}: the pipeline must end with a packing transform "
                            "(e.g. PackCXRInputs) giving a dict with 'data_samples', got "
                            f'{type(data).__name__}'
                            + (f' with keys {sorted(data)}' if isinstance(data, dict) else ''))
        packed_task = samples.metainfo.get('task', self.tasks[pair])
        if packed_task != self.tasks[pair]:
            raise ValueError(f'pair {name!r}: its pipeline packed a sample of task '
                             f'{packed_task!r}; pass the pair task to the dataset/pipeline')
        samples.set_metainfo(dict(dataset=self._dataset_names[pair], task=self.tasks[pair],
                                  sample_idx=self._global_index(idx)))
        return data
