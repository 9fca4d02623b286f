"""MultiTaskMetric: the paper's metric of every (dataset, task) pair in one evaluation."""
import logging
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric, DumpResults
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from fxmm.registry import METRICS
from fxmm.structures.cxr_data_sample import CLASS_KEYS, TASKS, check_task, pair_name
from ..functional import coco_map, dice_counts, map_name, mean_auc, summarize_dice

# the metric averaged over a task's pairs for the summary key '<task>/m<name>'
_HEADLINE = dict(cls='AUC', seg='Dice')  # loc: the first of det_iou_thrs, e.g. 'mAP40'


def _numpy(value: Any) -> np.ndarray:
    """Tensor, mmdet box type (``.tensor``) or array-like -> np.ndarray (on the CPU)."""
    value = getattr(value, 'tensor', value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _field(sample: dict, path: str) -> Any:
    """``sample['a']['b']`` for ``path='a.b'``; a missing field raises a KeyError naming it."""
    value = sample
    for key in path.split('.'):
        if not isinstance(value, dict) or key not in value:
            where = '{}.{}#{}'.format(*(sample.get(k) for k in ('dataset', 'task', 'sample_idx')))
            raise KeyError(f'MultiTaskMetric: data sample {where} has no {path!r}; its keys: '
                           f'{sorted(sample)}')
        value = value[key]
    return value


def _resize_masks(masks: Any, shape: Sequence[int]) -> torch.Tensor:
    """Binary masks (K, h, w) -> bool (K, H, W) at ``shape`` (nearest neighbour)."""
    masks = torch.as_tensor(_numpy(masks))
    if tuple(masks.shape[-2:]) != tuple(shape):
        masks = F.interpolate(masks[None].float(), size=tuple(shape), mode='nearest')[0]
    return masks.bool()


def _key(name: str) -> str:
    """A class name as a metric-key suffix: ``'Pleural Effusion' -> 'Pleural_Effusion'``."""
    return '_'.join(str(name).split())


def _nanmean(values: Sequence[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float('nan')


@METRICS.register_module()
class MultiTaskMetric(BaseMetric):
    """The Foundation X metrics of every (dataset, task) pair a multi-task evaluation visits.

    - cls: ROC-AUC per class and its mean (:func:`~fxmm.evaluation.functional.mean_auc`),
      keys ``'<dataset>.cls/AUC'`` and ``'<dataset>.cls/AUC_<class>'``;
    - loc: COCO mAP (:func:`~fxmm.evaluation.functional.coco_map`), keys
      ``'<dataset>.loc/mAP40'``, ``'.../mAP50'`` (one per ``det_iou_thrs``), ``'.../mAP'``;
    - seg: Dice per image with the classes pooled, mean over images (the paper's Seg Dice,
      :func:`~fxmm.evaluation.functional.summarize_dice`), key ``'<dataset>.seg/Dice'``, and
      each class's Dice, mean over images, ``'<dataset>.seg/Dice_<class>'``;
    - summaries over datasets: ``'cls/mAUC'``, ``'loc/mmAP40'`` (the first IoU threshold),
      ``'seg/mDice'`` (pairs with a nan result left out), and ``'score'``, the mean of the
      summaries present, for ``save_best='score'``.

    Values are fractions in [0, 1] (the results table prints percent). Class names come
    from ``dataset_meta`` (set by the runner from the dataset's metainfo): either
    ``dataset_meta['datasets'][<dataset>]['cls_classes' | 'det_classes' | 'seg_classes']``
    (a multi-task dataset) or the ``*_classes`` of a single dataset whose
    ``dataset_meta['dataset']`` matches; otherwise classes are named by index.

    Coordinates: predictions are in the original image (``ori_shape``) - mmdet's DINO
    rescales its boxes by ``scale_factor``; the pipeline's GT boxes are in the resized image
    and are divided by ``scale_factor`` (w, h) here, which inverts a resize (the evaluation
    pipeline must not crop). Seg masks are compared at ``ori_shape``: the configs' test
    pipelines load the GT masks after the resize, so they arrive at that size; GT masks of
    the resized image (annotations loaded before the resize) are brought back with nearest
    neighbour, which loses the detail the resize dropped (a warning says so, once), and so
    are predicted masks not already at ``ori_shape``.

    Only compact results are kept per sample: cls scores and labels, boxes, and the seg
    Dice's pixel counts per class (masks are reduced to them in :meth:`process`). A
    distributed sampler pads ranks with repeated samples; results are de-duplicated by
    (dataset, task, sample_idx).

    Args:
        auc_classes (dict, optional): dataset name -> the classes its AUC is averaged over,
            e.g. ``dict(chexpert=CHEXPERT_COMPETITION_CLASSES)``; all classes otherwise.
        det_iou_thrs (Sequence[float]): IoU thresholds reported individually; the first is
            the headline of ``'loc/mm...'``. Defaults to (0.4, 0.5) (the paper's mAP40, mAP50).
        det_max_dets (int): COCOeval's ``maxDets``, detections kept per image and class.
            Defaults to 100.
        dice_empty_score (float): Dice where both the GT and the prediction are empty.
            Defaults to 1.0; nan leaves such cases out of the means.
        collect_device (str): 'cpu' or 'gpu', for collecting results across ranks.
        prefix (str, optional): prepended as ``'<prefix>/'`` to every key. Defaults to none.
        collect_dir (str, optional): directory for collecting results on the CPU.
    """

    default_prefix = ''  # keys are '<dataset>.<task>/<metric>' unless a prefix is given

    def __init__(self,
                 auc_classes: Optional[Dict[str, Sequence[str]]] = None,
                 det_iou_thrs: Sequence[float] = (0.4, 0.5),
                 det_max_dets: int = 100,
                 dice_empty_score: float = 1.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if auc_classes is not None and not isinstance(auc_classes, dict):
            raise TypeError(f'auc_classes must be a dict dataset -> class names; got '
                            f'{type(auc_classes).__name__}')
        if len(det_iou_thrs) == 0:
            raise ValueError('det_iou_thrs must hold at least one IoU threshold')
        self.auc_classes = dict(auc_classes or {})
        self.det_iou_thrs = tuple(float(t) for t in det_iou_thrs)
        self.det_max_dets = det_max_dets
        self.dice_empty_score = float(dice_empty_score)
        self._warned_gt_resize = False
        self.headlines = dict(_HEADLINE, loc=map_name(self.det_iou_thrs[0]))

    # ----- per sample -----
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Reduce each data sample to what its task's metric needs, in ``self.results``.

        Args:
            data_batch (Any): the batch from the dataloader (unused).
            data_samples (Sequence[dict | CXRDataSample]): the model's outputs; mmengine's
                Evaluator passes ``data_sample.to_dict()``: metainfo keys at the top level
                (``dataset``, ``task``, ``sample_idx``, ``ori_shape``, ``scale_factor``),
                fields as dicts (``gt_cls``/``pred_cls``, ``gt_instances``/
                ``pred_instances``, ``gt_seg_masks``/``pred_seg_masks``).
        """
        reducers = dict(cls=self._reduce_cls, loc=self._reduce_loc, seg=self._reduce_seg)
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            record = dict(dataset=str(_field(sample, 'dataset')),
                          task=check_task(_field(sample, 'task')),
                          sample_idx=int(_field(sample, 'sample_idx')))
            record.update(reducers[record['task']](sample))
            self.results.append(record)

    @staticmethod
    def _reduce_cls(sample: dict) -> dict:
        score = _numpy(_field(sample, 'pred_cls.score')).astype(np.float32).reshape(-1)
        label = _numpy(_field(sample, 'gt_cls.label')).astype(np.float32).reshape(-1)
        if score.shape != label.shape:
            raise ValueError(f'MultiTaskMetric: {sample["dataset"]}#{sample["sample_idx"]} '
                             f'pred_cls.score has {score.size} classes, gt_cls.label '
                             f'{label.size}')
        return dict(score=score, label=label)

    @staticmethod
    def _reduce_loc(sample: dict) -> dict:
        w_scale, h_scale = _numpy(_field(sample, 'scale_factor')).astype(np.float32)[:2]
        gt_bboxes = _numpy(_field(sample, 'gt_instances.bboxes')).astype(np.float32)
        return dict(
            pred=dict(bboxes=_numpy(_field(sample, 'pred_instances.bboxes')).astype(np.float32),
                      scores=_numpy(_field(sample, 'pred_instances.scores')).astype(np.float32),
                      labels=_numpy(_field(sample, 'pred_instances.labels')).astype(np.int64)),
            gt=dict(bboxes=gt_bboxes.reshape(-1, 4) / np.array([w_scale, h_scale] * 2),
                    labels=_numpy(_field(sample, 'gt_instances.labels')).astype(np.int64)))

    def _reduce_seg(self, sample: dict) -> dict:
        shape = tuple(int(s) for s in _field(sample, 'ori_shape')[:2])
        pred = _resize_masks(_field(sample, 'pred_seg_masks.data'), shape)
        gt = _field(sample, 'gt_seg_masks.data')
        if tuple(gt.shape[-2:]) != shape and not self._warned_gt_resize:
            print_log(f'MultiTaskMetric: GT masks of {sample["dataset"]} are '
                      f'{tuple(gt.shape[-2:])}, not the original {shape}; they are resized back '
                      'for the Dice, which loses what the resize dropped. Load them after the '
                      'resize in the test pipeline: LoadCXRAnnotations(with_seg=False), '
                      'CXRResize, LoadCXRAnnotations(with_cls=False, with_bbox=False)',
                      logger='current', level=logging.WARNING)
            self._warned_gt_resize = True
        gt = _resize_masks(gt, shape)
        if pred.shape != gt.shape:
            raise ValueError(f'MultiTaskMetric: {sample["dataset"]}#{sample["sample_idx"]} '
                             f'has {pred.shape[0]} predicted and {gt.shape[0]} GT mask classes')
        inter, total = dice_counts(pred[None], gt[None])
        return dict(inter=inter[0], total=total[0])

    # ----- over the evaluation -----
    def evaluate(self, size: int) -> dict:
        """Gather every rank's results without truncating them to ``size``.

        mmengine cuts the gathered list to ``len(dataset)``, assuming padding only at the end;
        :class:`MultiTaskSampler` pads each (dataset, task) pair separately, so the cut would
        drop real samples. Duplicates are removed by ``sample_idx`` in
        :meth:`compute_metrics` instead.
        """
        return super().evaluate(None)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Metrics per pair, their means per task over datasets, and ``'score'``.

        Args:
            results (list[dict]): the records of :meth:`process` from all ranks.

        Returns:
            dict[str, float]: see the class docstring for the keys.
        """
        pairs: Dict[Tuple[str, str], Dict[int, dict]] = defaultdict(dict)
        for record in results:  # first occurrence wins: repeats are sampler padding
            pairs[(record['dataset'], record['task'])].setdefault(record['sample_idx'], record)
        num_unique = sum(len(records) for records in pairs.values())
        if num_unique < len(results):
            print_log(f'MultiTaskMetric: dropped {len(results) - num_unique} repeated samples '
                      '(distributed sampler padding)', logger='current')

        unused = sorted(set(self.auc_classes) - {d for d, task in pairs if task == 'cls'})
        if unused:
            print_log(f'MultiTaskMetric: auc_classes names {unused}, which this evaluation '
                      'has no cls pair of (a misspelt dataset name?); their classes are '
                      'not restricted', logger='current', level=logging.WARNING)
        evaluators = dict(cls=self._eval_cls, loc=self._eval_loc, seg=self._eval_seg)
        metrics: Dict[str, float] = {}
        per_task: Dict[str, List[float]] = defaultdict(list)
        for (dataset, task), by_idx in pairs.items():
            records = [by_idx[idx] for idx in sorted(by_idx)]
            name = pair_name(dataset, task)
            try:
                pair_metrics = evaluators[task](dataset, records)
            except (ValueError, KeyError) as err:
                raise type(err)(f'{name}: {err}') from err
            metrics.update({f'{name}/{key}': value for key, value in pair_metrics.items()})
            per_task[task].append(pair_metrics[self.headlines[task]])

        summaries = {f'{task}/m{self.headlines[task]}': _nanmean(per_task[task])
                     for task in TASKS if task in per_task}
        metrics.update(summaries)
        metrics['score'] = _nanmean(list(summaries.values()))
        return metrics

    def _known_classes(self, dataset: str, task: str) -> Optional[List[str]]:
        """The class names of ``dataset`` for ``task`` in ``dataset_meta``, None if absent."""
        meta = self.dataset_meta or {}
        key = CLASS_KEYS[task]
        if dataset in meta.get('datasets', {}):
            names = meta['datasets'][dataset].get(key)
        else:
            names = meta.get(key) if meta.get('dataset') == dataset else None
        return None if names is None else list(names)

    def _class_names(self, dataset: str, task: str, num: int) -> List[str]:
        """The ``num`` class names of ``dataset`` for ``task``, named by index if unknown."""
        names = self._known_classes(dataset, task)
        if names is None:
            return [str(i) for i in range(num)]
        if len(names) != num:
            raise ValueError(f'dataset_meta gives {len(names)} {CLASS_KEYS[task]} {names} '
                             f'but the data samples hold {num} classes')
        return names

    def _eval_cls(self, dataset: str, records: List[dict]) -> Dict[str, float]:
        scores = np.stack([r['score'] for r in records])
        labels = np.stack([r['label'] for r in records])
        names = self._class_names(dataset, 'cls', scores.shape[1])
        auc = mean_auc(scores, labels, names, self.auc_classes.get(dataset))
        return dict(AUC=auc['mean'],
                    **{f'AUC_{_key(n)}': value for n, value in auc['per_class'].items()})

    def _eval_loc(self, dataset: str, records: List[dict]) -> Dict[str, float]:
        names = self._known_classes(dataset, 'loc')
        if names is None:  # classes by index: as many as the largest label seen
            labels = [r[k]['labels'] for r in records for k in ('gt', 'pred')]
            num_classes = int(max((lab.max() for lab in labels if lab.size), default=0)) + 1
        else:
            num_classes = len(names)
        return coco_map([r['pred'] for r in records], [r['gt'] for r in records], num_classes,
                        self.det_iou_thrs, self.det_max_dets)

    def _eval_seg(self, dataset: str, records: List[dict]) -> Dict[str, float]:
        inter = np.stack([r['inter'] for r in records])
        total = np.stack([r['total'] for r in records])
        dice_summary = summarize_dice(inter, total,
                                      self._class_names(dataset, 'seg', inter.shape[1]),
                                      self.dice_empty_score)
        return dict(Dice=dice_summary['mean'],
                    **{f'Dice_{_key(n)}': v for n, v in dice_summary['per_class'].items()})


@METRICS.register_module()
class MultiTaskDumpResults(DumpResults):
    """mmengine's :class:`~mmengine.evaluator.DumpResults` (``tools/test.py --out``) for an
    evaluation by :class:`~fxmm.datasets.samplers.MultiTaskSampler`: every sample once, in
    the order one process writes them (pair by pair, ``sample_idx`` ascending), whatever
    the number of ranks.

    mmengine cuts the gathered predictions to ``len(dataset)``, assuming that padding sits
    at the end; the sampler pads every (dataset, task) pair, so the cut would keep repeats
    and drop real samples. Here nothing is cut and repeats of a
    ``(dataset, task, sample_idx)`` are dropped, as :class:`MultiTaskMetric` does.

    Args:
        out_file_path (str): the ``.pkl`` file to write.
        collect_device (str): 'cpu' or 'gpu', for collecting results across ranks.
        collect_dir (str, optional): directory for collecting results on the CPU.
    """

    def evaluate(self, size: int) -> dict:
        """Gather every rank's predictions without truncating them to ``size``."""
        return super().evaluate(None)

    def compute_metrics(self, results: List[dict]) -> dict:
        """Dump the de-duplicated, ordered predictions (a list of dicts)."""
        pair_order: Dict[Tuple[str, str], int] = {}
        unique: Dict[Tuple[str, str, int], dict] = {}
        for sample in results:  # first occurrence wins: repeats are sampler padding
            key = (str(_field(sample, 'dataset')), str(_field(sample, 'task')),
                   int(_field(sample, 'sample_idx')))
            pair_order.setdefault(key[:2], len(pair_order))
            unique.setdefault(key, sample)
        ordered = sorted(unique, key=lambda key: (pair_order[key[:2]], key[2]))
        return super().compute_metrics([unique[key] for key in ordered])
