"""Draw a model's test (and validation) predictions next to the ground truth."""
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmengine.utils import mkdir_or_exist

from fxmm.datasets.image_io import read_cxr_image
from fxmm.datasets.transforms.geometric import map_channels
from fxmm.engine.runner.tested_model import unwrap_tested_model
from fxmm.registry import HOOKS
from fxmm.structures import CLASS_KEYS, CXRDataSample, pair_name
from fxmm.visualization import draw_data_sample


@HOOKS.register_module()
class CXRVisualizationHook(Hook):
    """Draw each sample's predictions on its original image, beside its ground truth.

    One image per sample, two panels scaled to the original image's height:

    - left, the ground truth (``gt_cls`` / ``gt_instances`` / ``gt_seg_masks`` of
      ``data_batch['data_samples'][i]``) drawn on the network input
      ``data_batch['inputs'][i]``, shape (1, h, w), in whose (resized) coordinates it is;
      left out when ``show_gt`` is False or the sample has no ground truth.
    - right, the predictions (``pred_cls.score`` (C,), ``pred_instances`` with
      ``bboxes`` (N, 4) / ``scores`` / ``labels``, ``pred_seg_masks.data`` (K, H, W), all in
      original coordinates) drawn on the image re-read from ``img_path`` with
      :func:`~fxmm.datasets.image_io.read_cxr_image`: boxes scoring at least ``score_thr``,
      masks, and the three highest class probabilities (on the ground-truth panel, the
      three highest labels, positives first).

    Class names come from the dataloader's dataset: ``metainfo['classes'][<dataset>.<task>]``
    of a :class:`~fxmm.datasets.MultiTaskDataset`, or the ``cls_classes`` / ``det_classes`` /
    ``seg_classes`` of a single dataset of that name; else the class indices are written.

    Where the images go (the conventions of mmdet's ``DetVisualizationHook``):

    - testing with ``test_out_dir``: ``<work_dir>/<timestamp>/<test_out_dir>/<dataset>.<task>/
      <image stem>.png`` (an absolute ``test_out_dir`` is used as it is); for a
      ``TeacherStudent`` the copy that predicted comes first,
      ``<test_out_dir>/<student|teacher>/<dataset>.<task>/`` (``TeacherStudentTestLoop``
      tests both). A stem already written for the pair in this run becomes
      ``<stem>_<sample_idx>.png``; a sample a distributed sampler repeats (padding) is drawn
      once.
    - testing without it: every sample to the visualizer's backends
      (``runner.visualizer.add_image``) as ``test.[<copy>.]<dataset>.<task>.<stem>``.
    - validation: the first sample of every ``interval``-th batch to the visualizer's
      backends as ``val.<dataset>.<task>.<stem>``, at step ``runner.iter``.

    ``tools/test.py --show-dir DIR`` sets ``draw=True, test_out_dir=DIR``.

    Args:
        draw (bool): draw at all; False (the default) lets configs list the hook inactive.
        interval (int): validation batches between drawings. Defaults to 50.
        score_thr (float): the lowest box score drawn. Defaults to 0.3.
        show_gt (bool): add the ground-truth panel when the sample has ground truth.
            Defaults to True.
        test_out_dir (str, optional): where test images are saved, relative to
            ``<work_dir>/<timestamp>``. Defaults to None.
    """

    def __init__(self,
                 draw: bool = False,
                 interval: int = 50,
                 score_thr: float = 0.3,
                 show_gt: bool = True,
                 test_out_dir: Optional[str] = None) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if not 0 <= score_thr <= 1:
            raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
        self.draw = draw
        self.interval = interval
        self.score_thr = score_thr
        self.show_gt = show_gt
        self.test_out_dir = test_out_dir
        self._out_dir: Optional[str] = None
        self._written: Dict[str, set] = {}
        self._drawn: set = set()  # (copy, dataset, task, sample_idx) drawn in this run
        self._classes: Dict[tuple, List[str]] = {}
        self._test_index = 0

    def before_test(self, runner) -> None:
        """Resolve the output folder of this run and reset the per-run bookkeeping."""
        self._written, self._drawn, self._classes, self._test_index = {}, set(), {}, 0
        if self.draw and self.test_out_dir is not None:
            self._out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
            mkdir_or_exist(self._out_dir)

    def after_val_iter(self, runner, batch_idx: int, data_batch: dict,
                       outputs: Sequence[CXRDataSample]) -> None:
        """Draw the batch's first sample every ``interval`` batches to the visualizer."""
        if not self.draw or batch_idx % self.interval or not outputs:
            return
        canvas, pair, stem = self._draw(runner, 'val', data_batch, outputs, 0)
        runner.visualizer.add_image(f'val.{pair}.{stem}', canvas, step=runner.iter)

    def after_test_iter(self, runner, batch_idx: int, data_batch: dict,
                        outputs: Sequence[CXRDataSample]) -> None:
        """Draw every sample of the batch, to ``test_out_dir`` or the visualizer."""
        if not self.draw:
            return
        # a TeacherStudent model is tested once per copy: each copy gets its own folder
        copy = getattr(unwrap_tested_model(runner.model)[0], 'predict_on', None)
        for i, sample in enumerate(outputs):
            key = (copy, ) + tuple(sample.metainfo.get(k) for k in ('dataset', 'task',
                                                                    'sample_idx'))
            if key[-1] is not None and key in self._drawn:
                continue  # a distributed sampler's padding repeats a sample
            self._drawn.add(key)
            canvas, pair, stem = self._draw(runner, 'test', data_batch, outputs, i)
            self._test_index += 1
            subdir = pair if copy is None else osp.join(copy, pair)
            if self._out_dir is None:
                runner.visualizer.add_image(f"test.{subdir.replace(osp.sep, '.')}.{stem}",
                                            canvas, step=self._test_index)
                continue
            written = self._written.setdefault(subdir, set())
            name = (stem if stem not in written else
                    f"{stem}_{sample.metainfo.get('sample_idx', self._test_index)}")
            written.add(name)
            folder = osp.join(self._out_dir, subdir)
            mkdir_or_exist(folder)
            path = osp.join(folder, f'{name}.png')
            if not cv2.imwrite(path, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
                raise OSError(f'CXRVisualizationHook: cannot write {path!r}')

    def _draw(self, runner, mode: str, data_batch: dict, outputs: Sequence[CXRDataSample],
              i: int):
        """Draw sample ``i``.

        Returns:
            tuple[np.ndarray, str, str]: the uint8 RGB canvas (H, W_total, 3), the pair
            name and the image's file stem.
        """
        sample = outputs[i]
        missing = [k for k in ('dataset', 'task', 'img_path') if k not in sample.metainfo]
        if missing:
            raise ValueError(f'CXRVisualizationHook: output sample {i} has no {missing} in '
                             'its metainfo; pack the samples with PackCXRInputs')
        dataset, task, img_path = (sample.metainfo[k] for k in ('dataset', 'task', 'img_path'))
        pair = pair_name(dataset, task)
        meta = {CLASS_KEYS[task]: self._class_names(runner, mode, dataset, task, sample)}

        img, img_meta = read_cxr_image(img_path)
        if img.shape != img_meta['original_shape']:  # a store image: drawn at the original
            # size, in whose pixels the predictions are
            img = cv2.resize(img, img_meta['original_shape'][::-1], interpolation=cv2.INTER_LINEAR)
        masks = sample.get('pred_seg_masks')
        if masks is not None and tuple(masks.data.shape[-2:]) != img.shape:
            raise ValueError(
                f'CXRVisualizationHook: {img_path!r} is {img.shape} (H, W) but its predicted '
                f'masks are {tuple(masks.data.shape[-2:])}; predictions must be in original '
                'image coordinates')
        panels = [draw_data_sample(img, self._shown_predictions(sample), meta, pred=True)]

        gt = self._ground_truth(data_batch, i)
        if gt is not None:
            inputs, gt_sample = gt
            panel = draw_data_sample(inputs, gt_sample, meta)
            height = panels[0].shape[0]
            width = max(1, round(panel.shape[1] * height / panel.shape[0]))
            panels.insert(0, cv2.resize(panel, (width, height), interpolation=cv2.INTER_LINEAR))
        stem = osp.splitext(osp.basename(img_path))[0]
        return np.concatenate(panels, axis=1), pair, stem

    def _shown_predictions(self, sample: CXRDataSample) -> CXRDataSample:
        """The prediction fields to draw, boxes scoring below ``score_thr`` dropped."""
        shown = CXRDataSample()
        for field in ('pred_cls', 'pred_seg_masks'):
            if field in sample:
                setattr(shown, field, sample.get(field))
        if 'pred_instances' in sample:
            instances = sample.pred_instances
            shown.pred_instances = instances[instances.scores >= self.score_thr]
        return shown

    def _ground_truth(self, data_batch: dict, i: int):
        """``(inputs (h, w) array, gt sample)`` of sample ``i``, or None when not drawn."""
        if not self.show_gt or not isinstance(data_batch, dict):
            return None
        inputs, samples = data_batch.get('inputs'), data_batch.get('data_samples')
        if inputs is None or samples is None or i >= len(samples):
            return None
        sample = samples[i]
        if not any(field in sample for field in ('gt_cls', 'gt_instances', 'gt_seg_masks')):
            return None
        img = inputs[i]
        img = img.detach().cpu().numpy() if hasattr(img, 'detach') else np.asarray(img)
        # (C, h, w) network input -> (h, w) grey
        img = img.mean(axis=0) if img.ndim == 3 else img
        masks = sample.get('gt_seg_masks')
        if masks is not None and tuple(masks.data.shape[-2:]) != img.shape:
            # masks loaded after the resize (test pipelines) are at the original size
            sample = sample.clone()
            data = masks.data.cpu().numpy() if hasattr(masks.data, 'cpu') else masks.data
            sample.gt_seg_masks = PixelData(data=map_channels(
                np.asarray(data, dtype=np.uint8),
                lambda m: cv2.resize(m, img.shape[::-1], interpolation=cv2.INTER_NEAREST_EXACT),
                img.shape))
        return img, sample

    def _class_names(self, runner, mode: str, dataset: str, task: str,
                     sample: CXRDataSample) -> List[str]:
        """The class names of the pair's task, looked up once per pair."""
        if (mode, dataset, task) in self._classes:
            return self._classes[mode, dataset, task]
        loader = runner.test_dataloader if mode == 'test' else runner.val_dataloader
        meta = getattr(loader.dataset, 'metainfo', None) or {}
        names = (meta.get('classes') or {}).get(pair_name(dataset, task))
        if names is None and meta.get('dataset') == dataset:
            names = meta.get(CLASS_KEYS[task])
        if names is None:
            names = [str(i) for i in range(_num_classes(sample, task))]
            print_log(f'CXRVisualizationHook: no class names for {pair_name(dataset, task)!r} '
                      'in the dataset metainfo; writing class indices', logger='current',
                      level=logging.WARNING)
        self._classes[mode, dataset, task] = list(names)
        return self._classes[mode, dataset, task]


def _num_classes(sample: CXRDataSample, task: str) -> int:
    """The number of classes the sample's predictions show (0 when they do not)."""
    if task == 'cls' and 'pred_cls' in sample:
        return len(sample.pred_cls.score)
    if task == 'seg' and 'pred_seg_masks' in sample:
        return int(sample.pred_seg_masks.data.shape[0])
    if task == 'loc' and 'pred_instances' in sample and len(sample.pred_instances):
        return int(sample.pred_instances.labels.max()) + 1
    return 0
