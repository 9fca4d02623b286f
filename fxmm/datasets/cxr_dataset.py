"""``CXRDataset``: one split of one chest X-ray dataset in fxmm's annotation format.

The format (``docs/design.md``) is mmengine's OpenMMLab 2.0 JSON, ``{"metainfo": {...},
"data_list": [...]}``, written by the converters in ``data_converters/``. Every entry is
checked on load, so a broken file fails at start-up with the file, entry index and field;
and a training split without labels to learn from fails then too, naming the dataset.
"""
import json
import logging
import math
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.dataset.base_dataset import force_full_init
from mmengine.fileio import isdir, join_path, load
from mmengine.logging import print_log

from fxmm.registry import DATASETS
from fxmm.structures import CLASS_KEYS, TASKS, check_task
from fxmm.structures.mask_rle import rle_run_lengths
from .few_shot import describe_subset, few_shot_indices
from .bad_image_policy import BadImagePolicy
from .image_io import CXRImageError
from .label_policies import apply_label_policy, check_label_policy
from .sample_rng import current_sample_rng

# The version of the annotation format this fxmm reads and its converters write.
ANNOTATION_VERSION = 1

_CLS_VALUES = (1, 0, -1, None)
_FILTER_KEYS = {'filter_empty_gt'}
# what to do about a missing annotation file
MISSING_ANN_FILE_HINT = ('Check data_root and ann_file in the config, or convert the dataset '
                         'first (docs/datasets.md)')


class AnnotationFileNotFoundError(FileNotFoundError):
    """A dataset's annotation file is missing.

    Args:
        message (str): The whole message (``what`` and :data:`MISSING_ANN_FILE_HINT`).
        what (str, optional): Which file is missing, without the hint, for an error that
            lists several (``MultiTaskDataset``). Defaults to ``message``.
    """

    def __init__(self, message: str, what: Optional[str] = None) -> None:
        super().__init__(message)
        self.what = what or message


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_metainfo(meta: dict, ann_file: str) -> dict:
    """Check an annotation file's ``metainfo`` and fill the optional keys.

    Args:
        meta (dict): the ``metainfo`` of the file.
        ann_file (str): the file, for error messages.

    Returns:
        dict: a copy with ``cls_classes``, ``det_classes``, ``seg_classes``, ``lr_pairs``
        (lists, empty when absent).

    Raises:
        ValueError: ``"<ann_file> metainfo.<key>: <what is wrong>"``.
    """
    def fail(key, msg):
        return ValueError(f'{ann_file} metainfo.{key}: {msg}')

    if not isinstance(meta, dict):
        raise ValueError(f'{ann_file} metainfo: must be a dict, got {type(meta).__name__}')
    meta = dict(meta)
    version = meta.get('converter_version')
    if not _is_int(version) or version < 1:
        raise fail('converter_version', f'must be a positive int, got {version!r}')
    if version > ANNOTATION_VERSION:
        raise fail('converter_version', f'{version}: annotation file from a newer fxmm (this '
                   f'fxmm reads version {ANNOTATION_VERSION}); upgrade fxmm or re-convert')
    name = meta.get('dataset')
    if not isinstance(name, str) or not name or '.' in name:
        raise fail('dataset', f'must be a non-empty name without ".", got {name!r}')
    tasks = meta.get('tasks')
    if (not isinstance(tasks, list) or not tasks or not all(t in TASKS for t in tasks)
            or len(set(tasks)) != len(tasks)):
        raise fail('tasks', f'must be a non-empty list of distinct tasks from {TASKS}, '
                   f'got {tasks!r}')
    names = set()
    for task, key in CLASS_KEYS.items():
        classes = meta.setdefault(key, [])
        if (not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes)
                or len(set(classes)) != len(classes)):
            raise fail(key, f'must be a list of distinct class names, got {classes!r}')
        if (task in tasks) != bool(classes):
            raise fail(key, f'{len(classes)} classes, but tasks are {tasks} (a task needs '
                       'classes; a list must be empty where its task is absent)')
        names.update(classes)
    pairs = meta.setdefault('lr_pairs', [])
    if not isinstance(pairs, list):
        raise fail('lr_pairs', f'must be a list of [left_name, right_name], got {pairs!r}')
    for i, pair in enumerate(pairs):
        if (not isinstance(pair, list) or len(pair) != 2 or pair[0] == pair[1]
                or not all(isinstance(n, str) and n in names for n in pair)):
            raise fail(f'lr_pairs[{i}]', f'must be two different class names of this file, '
                       f'got {pair!r}')
    return meta


def check_entry(raw: dict, index: int, meta: dict, ann_file: str,
                bbox_tolerance: float = 2.0) -> dict:
    """Check one ``data_list`` entry and return it in the form :class:`CXRDataset` keeps.

    Args:
        raw (dict): the entry as read from JSON.
        index (int): its index in ``data_list``, for error messages.
        meta (dict): the file's metainfo, checked by :func:`check_metainfo`.
        ann_file (str): the file, for error messages.
        bbox_tolerance (float): how many pixels a box may reach outside the image; such boxes
            are clipped to the image.

    Returns:
        dict: a copy of the entry where ``cls_label`` is a float32 array (C,) with nan for
        missing, ``instances`` a list (boxes clipped) and ``seg`` a dict holding only the
        non-empty masks (an absent class means an all-zero mask).

    Raises:
        ValueError: ``"<ann_file> data_list[<index>].<field>: <what is wrong>"``.
    """
    def fail(field, msg):
        return ValueError(f'{ann_file} data_list[{index}].{field}: {msg}')

    if not isinstance(raw, dict):
        raise ValueError(f'{ann_file} data_list[{index}]: must be a dict, '
                         f'got {type(raw).__name__}')
    entry = dict(raw)
    if not isinstance(entry.get('img_path'), str) or not entry['img_path']:
        raise fail('img_path', f'must be a non-empty path, got {entry.get("img_path")!r}')
    for key in ('height', 'width'):
        if not _is_int(entry.get(key)) or entry[key] <= 0:
            raise fail(key, f'must be a positive int, got {entry.get(key)!r}')
    height, width = entry['height'], entry['width']
    if 'patient_id' in entry and not isinstance(entry['patient_id'], str):
        raise fail('patient_id', f'must be a str, got {entry["patient_id"]!r}')
    spacing = entry.get('pixel_spacing')
    if spacing is not None and (not isinstance(spacing, list) or len(spacing) != 2
                                or not all(_is_number(s) and s > 0 for s in spacing)):
        raise fail('pixel_spacing', f'must be [row_mm, col_mm] > 0 or null, got {spacing!r}')

    num_cls = len(meta['cls_classes'])
    labels = entry.get('cls_label', None if num_cls else [])
    if not isinstance(labels, list) or len(labels) != num_cls:
        raise fail('cls_label', f'must be a list of {num_cls} labels (one per cls_classes), '
                   f'got {labels!r}')
    bad = [v for v in labels if isinstance(v, bool) or v not in _CLS_VALUES]
    if bad:
        raise fail('cls_label', f'values must be 1, 0, -1 or null, got {bad[0]!r}')
    entry['cls_label'] = np.array(labels, dtype=np.float32)

    instances = entry.get('instances', [])
    if not isinstance(instances, list):
        raise fail('instances', f'must be a list, got {type(instances).__name__}')
    entry['instances'] = [
        _check_instance(inst, f'instances[{i}]', fail, height, width,
                        len(meta['det_classes']), bbox_tolerance)
        for i, inst in enumerate(instances)]

    seg = entry.get('seg', {})
    if not isinstance(seg, dict):
        raise fail('seg', f'must be a dict of class name -> RLE, got {type(seg).__name__}')
    entry['seg'] = {}
    for name, rle in seg.items():
        if name not in meta['seg_classes']:
            raise fail(f'seg.{name}', f'not one of seg_classes {meta["seg_classes"]}')
        try:
            runs = rle_run_lengths(rle, height, width)
        except ValueError as err:
            raise fail(f'seg.{name}', str(err)) from None
        if runs[1::2].any():
            entry['seg'][name] = rle
    return entry


def _check_instance(inst, field: str, fail, height: int, width: int, num_classes: int,
                    tolerance: float) -> dict:
    """Check one box of an entry and return a copy with the box clipped to the image."""
    if not isinstance(inst, dict):
        raise fail(field, f'must be a dict, got {type(inst).__name__}')
    inst = dict(inst)
    bbox = inst.get('bbox')
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        raise fail(f'{field}.bbox', f'must be 4 finite numbers [x1, y1, x2, y2], got {bbox!r}')
    x1, y1, x2, y2 = bbox
    if not (x1 < x2 and y1 < y2):
        raise fail(f'{field}.bbox', f'needs x1 < x2 and y1 < y2, got {bbox}')
    if min(x1, y1) < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        raise fail(f'{field}.bbox', f'{bbox} lies outside the image (width {width}, height '
                   f'{height}) by more than {tolerance} px')
    inst['bbox'] = [max(float(x1), 0.), max(float(y1), 0.),
                    min(float(x2), float(width)), min(float(y2), float(height))]
    if not (inst['bbox'][0] < inst['bbox'][2] and inst['bbox'][1] < inst['bbox'][3]):
        raise fail(f'{field}.bbox', f'{bbox} has no area inside the image')
    label = inst.get('bbox_label')
    if not _is_int(label) or not 0 <= label < num_classes:
        raise fail(f'{field}.bbox_label', f'must be an int in [0, {num_classes}) '
                   f'(index into det_classes), got {label!r}')
    if inst.get('reader') is not None and not isinstance(inst['reader'], str):
        raise fail(f'{field}.reader', f'must be a str or null, got {inst["reader"]!r}')
    return inst


@DATASETS.register_module()
class CXRDataset(BaseDataset):
    """One split of a chest X-ray dataset, read from an fxmm annotation file.

    Every entry of the file is validated (see :func:`check_entry`). Each sample given to the
    pipeline holds the entry (``img_path`` joined with ``data_root``/``data_prefix``,
    ``height``, ``width``, ``cls_label`` float32 (C,) with nan = missing after the label
    policy, ``instances``, ``seg`` with only non-empty masks, ``patient_id``, ...) plus
    ``sample_idx``, ``dataset``, ``task``, ``cls_classes``, ``det_classes``,
    ``seg_classes`` and ``lr_pairs``. These shared keys are added when a sample is fetched
    (:meth:`get_data_info`) rather than stored with every entry.

    Args:
        ann_file (str): the annotation JSON, relative to ``data_root`` or absolute.
        data_root (str): root of ``ann_file`` and of the images.
        pipeline (Sequence[dict | Callable]): the transforms.
        task (str, optional): one of :data:`fxmm.structures.TASKS`, which must be among the
            file's ``tasks``. None: the file's task when it has only one, else left None for
            the multi-task wrapper to set.
        label_policy (str | dict): what uncertain (-1) / missing image labels become, applied
            once at load time (see :mod:`fxmm.datasets.label_policies`), e.g. ``'ones'`` or
            ``dict(type='lsr', missing_as_zero=True)``. Defaults to ``'ignore'``.
        label_seed (int): seed of the local RNG of random label policies ('lsr').
        bbox_tolerance (float): pixels a box may reach outside the image before it is an
            error; boxes within the tolerance are clipped.
        data_prefix (dict, optional): ``dict(img_path=<folder under data_root>)``.
        filter_cfg (dict, optional): ``dict(filter_empty_gt=True)`` drops images without
            annotations of ``task`` (no boxes for 'loc', no non-empty mask for 'seg', only
            missing labels for 'cls'); not applied in test mode. By default all images are
            kept (images without boxes are useful negatives for 'loc').
        num_samples (int, optional): keep a seeded subset of this many images, made of whole
            patients (few-shot training, see :func:`fxmm.datasets.few_shot.few_shot_indices`),
            chosen after ``filter_cfg``. None keeps all. Defaults to None.
        subset_seed (int): seed of the ``num_samples`` subset. Defaults to 0.
        max_bad_images (int): training images that may fail to load (``CXRImageError``:
            missing, undecodable, or of another size than annotated) before training stops;
            each is skipped with a warning naming the file, and another random image of this
            dataset is used instead (see :class:`~fxmm.datasets.bad_image_policy.
            BadImagePolicy`; the count is per process). 0: the first failure is an error.
            In test mode a failure is always an error: metrics need every image.
            Defaults to 100.
        test_mode, indices, lazy_init, serialize_data, max_refetch: as in
            :class:`mmengine.dataset.BaseDataset`.

    Labels to learn from are checked once loaded (after the label policy, ``filter_cfg``,
    ``num_samples`` and ``indices``), for the dataset's ``task``. A 'cls' training dataset
    (``test_mode=False``) stops with a ``ValueError`` naming the file, the dataset and the
    reason when no image has a label a loss uses (every one missing, or uncertain and kept
    as -1), or when no image is positive (> 0) for any class: the head cannot learn from
    that. Its classes that no image labels are named in a warning. A 'loc' / 'seg' training
    dataset without any box / mask gets a warning (an image without them is a labelled
    negative, but with none anywhere the head learns nothing to find). A val/test dataset
    without any label of its task gets a warning (nothing to evaluate); one without
    positives is fine: a small split may lack them, and the metrics skip such classes.
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 pipeline: Sequence = (),
                 task: Optional[str] = None,
                 label_policy: Union[str, dict] = 'ignore',
                 label_seed: int = 0,
                 bbox_tolerance: float = 2.0,
                 data_prefix: Optional[dict] = None,
                 filter_cfg: Optional[dict] = None,
                 num_samples: Optional[int] = None,
                 subset_seed: int = 0,
                 test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 lazy_init: bool = False,
                 serialize_data: bool = True,
                 max_refetch: int = 1000,
                 max_bad_images: int = 100):
        self.task = None if task is None else check_task(task)
        self.label_policy = check_label_policy(label_policy)
        self.label_seed = label_seed
        if not _is_number(bbox_tolerance) or bbox_tolerance < 0:
            raise ValueError(f'bbox_tolerance must be a number >= 0, got {bbox_tolerance!r}')
        self.bbox_tolerance = bbox_tolerance
        data_prefix = dict(img_path='') if data_prefix is None else data_prefix
        if set(data_prefix) != {'img_path'}:
            raise ValueError(f'data_prefix must be dict(img_path=<folder>), got {data_prefix!r}')
        unknown = set(filter_cfg or {}) - _FILTER_KEYS
        if unknown:
            raise ValueError(f'filter_cfg: unknown keys {sorted(unknown)}; '
                             f'supported: {sorted(_FILTER_KEYS)}')
        self.num_samples = num_samples
        self.subset_seed = subset_seed
        self.bad_images = BadImagePolicy(max_bad_images, ann_file)
        self._ann_file_arg = ann_file
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            filter_cfg=filter_cfg,
            indices=indices,
            serialize_data=serialize_data,
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            max_refetch=max_refetch)
        self.bad_images.dataset_name = self.ann_file

    def load_data_list(self) -> List[dict]:
        """Read and validate the annotation file; apply the label policy.

        Returns:
            list[dict]: the checked entries (see :func:`check_entry`).
        """
        try:
            annotations = load(self.ann_file, file_format='json')
        except json.JSONDecodeError as err:
            raise ValueError(f'{self.ann_file}: not valid JSON ({err})') from None
        except FileNotFoundError:
            what = self._missing_ann_file()
            raise AnnotationFileNotFoundError(f'{what}. {MISSING_ANN_FILE_HINT}', what) from None
        if (not isinstance(annotations, dict)
                or not {'metainfo', 'data_list'} <= set(annotations)):
            raise ValueError(f'{self.ann_file}: must be a JSON object with "metainfo" and '
                             '"data_list" (see docs/design.md)')
        meta = check_metainfo(annotations['metainfo'], self.ann_file)
        if self.task is None and len(meta['tasks']) == 1:
            self.task = meta['tasks'][0]
        elif self.task is not None and self.task not in meta['tasks']:
            raise ValueError(f'{self.ann_file}: task {self.task!r} requested, but the file has '
                             f'tasks {meta["tasks"]} (dataset {meta["dataset"]!r}; a converter '
                             'lists only the tasks the official files gave labels for, see the '
                             'conversion_report.json beside the file)')
        self._metainfo.update(meta)
        raw_list = annotations['data_list']
        if not isinstance(raw_list, list):
            raise ValueError(f'{self.ann_file} data_list: must be a list, '
                             f'got {type(raw_list).__name__}')
        rng = np.random.default_rng(self.label_seed)
        data_list = []
        for index, raw in enumerate(raw_list):
            entry = check_entry(raw, index, meta, self.ann_file, self.bbox_tolerance)
            entry['cls_label'] = apply_label_policy(entry['cls_label'], self.label_policy, rng)
            data_list.append(self.parse_data_info(entry))
        return data_list

    def _missing_ann_file(self) -> str:
        """Say which annotation file is missing, and whether its data_root exists."""
        msg = f'annotation file {self.ann_file!r} not found'
        if self.data_root and self.ann_file != self._ann_file_arg:
            msg += f' (ann_file={self._ann_file_arg!r} under data_root={self.data_root!r}'
            msg += ', a folder that does not exist)' if not isdir(self.data_root) else ')'
        return msg

    def prepare_data(self, idx: int):
        """The pipeline's output for sample ``idx``; None (so that ``__getitem__`` takes
        another random sample) when a training image fails to load, counted by
        :attr:`bad_images`.

        Raises:
            CXRImageError: in test mode.
            BadImageLimitError: after more than ``max_bad_images`` failures.
        """
        try:
            return super().prepare_data(idx)
        except CXRImageError as err:
            if self.test_mode:
                raise
            self.bad_images.record(err)
            return None

    def _rand_another(self) -> int:
        """The index that replaces a training image that failed to load: drawn from the
        sample's generator when there is one (:mod:`fxmm.datasets.sample_rng`, so a resumed
        run makes the same replacement), else from the global NumPy RNG (mmengine's)."""
        rng = current_sample_rng()
        if rng is None:
            return super()._rand_another()
        return int(rng.integers(len(self)))

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """Join ``img_path`` with ``data_root``/``data_prefix`` (absolute paths stay)."""
        raw_data_info['img_path'] = join_path(self.data_prefix['img_path'],
                                              raw_data_info['img_path'])
        return raw_data_info

    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` (see the class docstring; not in test mode), then keep the
        ``num_samples`` subset."""
        kept = self._filter_empty_gt()
        if self.num_samples is None:
            return kept
        indices = few_shot_indices(kept, self.num_samples, self.subset_seed, self.ann_file)
        print_log(f'{self.ann_file}: {describe_subset(kept, indices, self.subset_seed)}',
                  logger='current')
        return [kept[i] for i in indices]

    def _filter_empty_gt(self) -> List[dict]:
        if self.test_mode or not (self.filter_cfg or {}).get('filter_empty_gt'):
            return self.data_list
        if self.task is None:
            raise ValueError(f'{self.ann_file}: filter_empty_gt needs a task, but the file has '
                             f'several ({self._metainfo["tasks"]}) and task=None')
        kept = [info for info in self.data_list if self._has_gt(info)]
        print_log(f'{self.ann_file}: filter_empty_gt dropped {len(self.data_list) - len(kept)} '
                  f'of {len(self.data_list)} images without {self.task} annotations',
                  logger='current')
        return kept

    def _has_gt(self, info: dict) -> bool:
        if self.task == 'loc':
            return bool(info['instances'])
        if self.task == 'seg':
            return bool(info['seg'])
        return bool(len(info['cls_label'])) and not np.isnan(info['cls_label']).all()

    def full_init(self):
        """Load, filter and index the file as BaseDataset does, log a summary, and check
        that the task has labels (see the class docstring)."""
        if self._fully_initialized:
            return
        super().full_init()
        self._label_counts = self._count_labels()
        print_log(repr(self), logger='current')
        self._check_labels()

    def _count_labels(self) -> Dict[str, np.ndarray]:
        """Per-class counts over the loaded images, in one pass.

        Returns:
            dict: ``cls_one`` (images labelled 1), ``cls_positive`` (labelled > 0, soft
            labels included), ``cls_known`` (a label a loss uses: not missing, not -1),
            ``cls_uncertain`` (-1), each (C_cls,); ``det`` boxes (C_det,); ``seg`` images
            with a non-empty mask (C_seg,).
        """
        meta = self._metainfo
        num_cls = len(meta['cls_classes'])
        counts = {key: np.zeros(num_cls, dtype=np.int64)
                  for key in ('cls_one', 'cls_positive', 'cls_known', 'cls_uncertain')}
        counts['det'] = np.zeros(len(meta['det_classes']), dtype=np.int64)
        counts['seg'] = np.zeros(len(meta['seg_classes']), dtype=np.int64)
        for idx in range(len(self)):
            info = super().get_data_info(idx)
            label = info['cls_label']
            known = ~np.isnan(label) & (label != -1)
            counts['cls_one'] += label == 1
            counts['cls_positive'] += known & (label > 0)
            counts['cls_known'] += known
            counts['cls_uncertain'] += label == -1
            for inst in info['instances']:
                counts['det'][inst['bbox_label']] += 1
            for name in info['seg']:
                counts['seg'][meta['seg_classes'].index(name)] += 1
        return counts

    def _check_labels(self) -> None:
        """Stop a 'cls' training dataset without labels to learn from; warn about the other
        datasets without labels of their task, and about unlabelled training classes (see
        the class docstring)."""
        if self.task is None or len(self) == 0:  # an empty pair: MultiTaskDataset says so
            return
        counts = self._label_counts
        where = (f'{self.ann_file}: dataset {self._metainfo["dataset"]!r}, task '
                 f'{self.task!r}, {len(self)} images')
        if self.task == 'cls':
            uncertain = int(counts['cls_uncertain'].sum())
            missing = None if counts['cls_known'].any() else (
                'no image has a cls label: every one is missing (null)' + (
                    f' or uncertain (-1, {uncertain} of them, which label_policy '
                    f"{self.label_policy['type']!r} keeps as -1, ignored by the loss)"
                    if uncertain else ''))
            if missing is None and not self.test_mode and not counts['cls_positive'].any():
                missing = (f'no image is positive for any of its {len(counts["cls_known"])} '
                           'classes (every label is 0 or missing)')
        elif self.task == 'loc':
            missing = None if counts['det'].any() else 'no image has a box'
        else:
            missing = None if counts['seg'].any() else 'no image has a non-empty mask'
        if missing and self.test_mode:
            print_log(f'{where}: {missing}: there is nothing to evaluate', logger='current',
                      level=logging.WARNING)
        elif missing and self.task == 'cls':
            raise ValueError(
                f'{where}: {missing}. A training pair cannot learn from that. Check the '
                'annotation file (its conversion_report.json says what the official files '
                'gave) and the label_policy, or leave this pair out of the config')
        elif missing:
            print_log(f'{where}: {missing}: the head learns nothing to find',
                      logger='current', level=logging.WARNING)
        elif self.task == 'cls' and not self.test_mode and not counts['cls_known'].all():
            names = [name for name, n in zip(self._metainfo['cls_classes'], counts['cls_known'])
                     if n == 0]
            print_log(f'{where}: no image has a label of {names}: the head does not learn '
                      'them', logger='current', level=logging.WARNING)

    def get_data_info(self, idx: int) -> dict:
        """The ``idx``-th entry with ``sample_idx``, ``dataset``, ``task``, the class lists
        and ``lr_pairs`` added."""
        info = super().get_data_info(idx)
        meta = self._metainfo
        info.update(dataset=meta['dataset'], task=self.task,
                    lr_pairs=[list(pair) for pair in meta['lr_pairs']],
                    **{key: list(meta[key]) for key in CLASS_KEYS.values()})
        return info

    def get_cat_ids(self, idx: int) -> List[int]:
        """The classes in image ``idx`` for the dataset's task.

        Returns:
            list[int]: 'loc': the label of every box (indices into ``det_classes``); 'cls':
            the classes labelled 1; 'seg': the classes with a non-empty mask.
        """
        info = self.get_data_info(idx)
        if self.task == 'loc':
            return [inst['bbox_label'] for inst in info['instances']]
        if self.task == 'cls':
            return np.flatnonzero(info['cls_label'] == 1).tolist()
        if self.task == 'seg':
            return [info['seg_classes'].index(name) for name in info['seg']]
        raise ValueError(f'{self.ann_file}: get_cat_ids needs a task, got task=None')

    @force_full_init
    def class_counts(self) -> Dict[str, Dict[str, int]]:
        """Positives per class over the (filtered) dataset.

        Returns:
            dict: ``'cls'``: images labelled 1 per class; ``'det'``: boxes per class;
            ``'seg'``: images with a non-empty mask per class. Only the kinds the file has.
        """
        meta = self._metainfo
        counts = {'cls': dict(zip(meta['cls_classes'], self._label_counts['cls_one'].tolist())),
                  'det': dict(zip(meta['det_classes'], self._label_counts['det'].tolist())),
                  'seg': dict(zip(meta['seg_classes'], self._label_counts['seg'].tolist()))}
        return {kind: per_class for kind, per_class in counts.items() if per_class}

    def __repr__(self) -> str:
        head = f'{type(self).__name__}(ann_file={self.ann_file!r}, task={self.task!r}'
        if not self._fully_initialized:
            return head + ', not loaded yet)'
        lines = [f'{head}, dataset={self._metainfo["dataset"]!r}, images={len(self)})']
        titles = {'cls': 'images labelled 1', 'det': 'boxes', 'seg': 'non-empty masks'}
        for kind, per_class in self.class_counts().items():
            counts = ', '.join(f'{name}: {n}' for name, n in per_class.items())
            lines.append(f'  {titles[kind]} per class - {counts}')
        return '\n'.join(lines)
