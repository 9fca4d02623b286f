"""The data sample that carries one chest X-ray through every task of fxmm."""
from mmdet.structures import DetDataSample
from mmengine.structures import LabelData, PixelData

# The task names, defined once. A (dataset, task) pair is written '<dataset>.<task>'.
TASKS = ('cls', 'loc', 'seg')
# task -> the key of its class list in a dataset's metainfo (the annotation format,
# docs/design.md) and in FoundationX's ``datasets``
CLASS_KEYS = dict(cls='cls_classes', loc='det_classes', seg='seg_classes')


def check_task(task: str) -> str:
    """Return ``task`` if it is one of :data:`TASKS`, else raise a ValueError naming it."""
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; expected one of {TASKS}')
    return task


def pair_name(dataset: str, task: str) -> str:
    """The key of a (dataset, task) pair, e.g. ``'siim.seg'``, used in logs and metrics."""
    return f'{dataset}.{check_task(task)}'


class CXRDataSample(DetDataSample):
    """A :class:`mmdet.structures.DetDataSample` with image-level and per-class mask fields.

    Being a DetDataSample, it feeds mmdet's DINO head directly (``gt_instances`` with
    ``bboxes`` (N, 4) xyxy and ``labels`` (N,)). fxmm adds:

    - ``gt_cls`` (LabelData): ``label`` float tensor (C,) - 1 / 0 / -1 (uncertain) /
      nan (missing); ``pred_cls``: ``score`` (C,) sigmoid probabilities.
    - ``gt_seg_masks`` (PixelData): ``data`` uint8 tensor (K, H, W), one binary mask per
      seg class of the dataset (multi-label: masks may overlap); ``pred_seg_masks``:
      ``data`` (K, H, W) bool and ``score`` (K, H, W) float.

    Metainfo keys set by the data pipeline: ``dataset`` (name), ``task`` (one of
    :data:`TASKS`), ``img_path``, ``ori_shape``, ``img_shape``, ``scale_factor``, ``flip``,
    ``sample_idx``.
    """

    @property
    def gt_cls(self) -> LabelData:
        return self._gt_cls

    @gt_cls.setter
    def gt_cls(self, value: LabelData):
        self.set_field(value, '_gt_cls', dtype=LabelData)

    @gt_cls.deleter
    def gt_cls(self):
        del self._gt_cls

    @property
    def pred_cls(self) -> LabelData:
        return self._pred_cls

    @pred_cls.setter
    def pred_cls(self, value: LabelData):
        self.set_field(value, '_pred_cls', dtype=LabelData)

    @pred_cls.deleter
    def pred_cls(self):
        del self._pred_cls

    @property
    def gt_seg_masks(self) -> PixelData:
        return self._gt_seg_masks

    @gt_seg_masks.setter
    def gt_seg_masks(self, value: PixelData):
        self.set_field(value, '_gt_seg_masks', dtype=PixelData)

    @gt_seg_masks.deleter
    def gt_seg_masks(self):
        del self._gt_seg_masks

    @property
    def pred_seg_masks(self) -> PixelData:
        return self._pred_seg_masks

    @pred_seg_masks.setter
    def pred_seg_masks(self, value: PixelData):
        self.set_field(value, '_pred_seg_masks', dtype=PixelData)

    @pred_seg_masks.deleter
    def pred_seg_masks(self):
        del self._pred_seg_masks
