"""Inference on chest X-ray files with every head of a Foundation X model (``FXInferencer``).

One backbone pass per image gives, for every dataset the model was trained on, its class
probabilities, boxes and masks (``FoundationX.predict(heads='all')``). Results are in the
original image's pixels and are returned as plain dicts and, with ``out_dir``, written as:

- ``<out_dir>/predictions.json``: ``{'meta': {...}, 'predictions': [result, ...],
  'errors': [{'img_path', 'error'}, ...]}``, a result being::

      {'img_path': str, 'ori_shape': [H, W], 'overlay': str (when written),
       'datasets': {<dataset>: {
           'cls': {<class>: probability},
           'loc': [{'bbox': [x1, y1, x2, y2] (to 0.01 px), 'label': <class>,
                    'score': float}, ...],
           'seg': {<class>: {'area_px': int, 'rle': {'size': [H, W], 'counts': str}}}}}}

  (``loc`` holds the boxes with ``score >= score_thr``, best first; ``rle`` is the COCO RLE
  of the binary mask, decodable with ``pycocotools.mask.decode`` or
  :func:`fxmm.structures.mask_rle.decode_mask`; a dataset lists only the tasks it has).
- ``<out_dir>/predictions.csv``: one row per image x dataset x item, columns
  :data:`CSV_FIELDS`: ``task='cls'`` rows give a class probability in ``score``,
  ``task='loc'`` rows a box (``class``, ``score``, ``x1``..``y2``), ``task='seg'`` rows a
  mask area in ``area_px``; a file that failed has one row with only ``img_path`` and
  ``error``.
- ``<out_dir>/overlays/<stem>.png``: one panel per dataset (see :func:`draw_overlay`).

Every file is written to a temporary name and moved into place, so an interrupted run never
leaves a half-written file.
"""
import copy
import csv
import io
import json
import logging
import math
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from mmengine.utils import ProgressBar

from fxmm.datasets.image_io import _EXTENSIONS as IMAGE_FORMAT_OF_SUFFIX
from fxmm.datasets.image_io import CXRImageError
from fxmm.models.foundation_x import CLASS_KEYS, FoundationX
from fxmm.registry import MODELS, TRANSFORMS
from fxmm.structures.cxr_data_sample import TASKS, CXRDataSample, check_task
from fxmm.structures.mask_rle import decode_mask, encode_mask
from fxmm.utils import register_all_modules
from fxmm.visualization import draw_cxr
from fxmm.utils.atomic_io import atomic_write_bytes

InputsType = Union[str, Sequence[str]]
#: file suffixes a folder is scanned for (files without a suffix are read as bare DICOM)
IMAGE_SUFFIXES = tuple(sorted(IMAGE_FORMAT_OF_SUFFIX))
#: columns of predictions.csv
CSV_FIELDS = ('img_path', 'dataset', 'task', 'class', 'score', 'x1', 'y1', 'x2', 'y2',
              'area_px', 'error')
#: the two copies a TeacherStudent checkpoint holds, as ``use`` names them
MODEL_COPIES = ('teacher', 'student')
# the metainfo the inference pipeline packs (no dataset/task: every head runs)
_META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'scale_factor')
# header bar above each overlay panel: height as a fraction of the panel width (min 16 px)
_HEADER_FRACTION = 0.06


def select_model_copy(state_dict: dict, use: Optional[str] = None) -> Tuple[dict, Optional[str]]:
    """Pick one model out of a ``TeacherStudent`` state dict.

    A ``TeacherStudent`` checkpoint holds ``student.<key>`` and ``teacher.<key>`` (plus its
    ``progress`` buffer); a ``FoundationX`` checkpoint holds ``<key>``. The chosen copy's keys
    lose their prefix, the other copy and unprefixed keys are dropped; a plain state dict is
    returned as it is.

    Args:
        state_dict (dict): The checkpoint's ``state_dict``.
        use (str, optional): ``'teacher'`` or ``'student'``; None picks the teacher if the
            checkpoint has one, else the student. Ignored for a plain state dict.

    Returns:
        tuple[dict, str | None]: The FoundationX state dict (keeping ``_metadata``) and the
        copy it came from (None for a plain state dict).

    Raises:
        ValueError: ``use`` is not a copy name, or names a copy the checkpoint lacks.
    """
    if use is not None and use not in MODEL_COPIES:
        raise ValueError(f'use must be one of {MODEL_COPIES} or None, got {use!r}')
    present = [name for name in MODEL_COPIES
               if any(key.startswith(name + '.') for key in state_dict)]
    if not present:
        return state_dict, None
    if use is None:
        use = present[0]
    elif use not in present:
        raise ValueError(f'the checkpoint has no {use} copy (its copies: {present})')
    prefix = use + '.'
    selected = OrderedDict((key[len(prefix):], value) for key, value in state_dict.items()
                           if key.startswith(prefix))
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        selected._metadata = OrderedDict(
            (key[len(prefix):] if key.startswith(prefix) else '', value)
            for key, value in metadata.items() if key.startswith(prefix) or key == use)
    return selected, use


def find_test_transforms(cfg: Config) -> Dict[str, dict]:
    """The ``LoadCXRImage`` and ``CXRResize`` configs of a config's test pipeline.

    Looked up in ``cfg.test_pipeline``, then in every ``pipeline`` under
    ``cfg.test_dataloader`` (e.g. each pair of a ``MultiTaskDataset``); the first of each
    type wins.

    Args:
        cfg (Config): A training/test config.

    Returns:
        dict[str, dict]: Type name (without scope) -> a copy of its config, for the types
        found.
    """
    pipelines = [cfg.get('test_pipeline') or []]

    def collect(node):
        if isinstance(node, dict):
            if isinstance(node.get('pipeline'), (list, tuple)):
                pipelines.append(node['pipeline'])
            for value in node.values():
                collect(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                collect(value)

    collect(cfg.get('test_dataloader'))
    found = {}
    for pipeline in pipelines:
        for transform in pipeline:
            name = str(transform.get('type', '')).rpartition('.')[2]
            if name in ('LoadCXRImage', 'CXRResize') and name not in found:
                found[name] = copy.deepcopy(dict(transform))
    return found


def _foundation_x_cfg(model_cfg: dict) -> dict:
    """The FoundationX config of a model config; a TeacherStudent's inner model (built once,
    not twice), with the TeacherStudent's data preprocessor if it sets one."""
    model_cfg = copy.deepcopy(model_cfg)
    if str(model_cfg.get('type', '')).rpartition('.')[2] != 'TeacherStudent':
        return model_cfg
    inner = model_cfg['model']
    if model_cfg.get('data_preprocessor') is not None:
        inner['data_preprocessor'] = model_cfg['data_preprocessor']
    return inner


def _reason(error: Exception) -> str:
    """The message of a failure; a CXRImageError's already names the file and the reason."""
    return str(error) if isinstance(error, CXRImageError) else f'{type(error).__name__}: {error}'


def _png_bytes(canvas: np.ndarray) -> bytes:
    """PNG encoding of an RGB uint8 canvas (H, W, 3)."""
    ok, png = cv2.imencode('.png', cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {canvas.shape} overlay as PNG')
    return png.tobytes()


def draw_overlay(img: np.ndarray,
                 result: dict,
                 class_names: Dict[str, Dict[str, list]],
                 panel_size: Optional[int] = 512,
                 max_cols: int = 4) -> np.ndarray:
    """Draw one image's results, one panel per dataset, panels in a grid.

    Each panel is the image with that dataset's masks (coloured, labelled at their centre),
    boxes (with label and score) and its 3 most probable classes (top left), under a header
    bar with the dataset's name. A result without datasets gives one panel of the bare image.

    Layout: the image is resized so that its long side is ``panel_size`` (keeping its aspect
    ratio; ``None`` keeps the original size, so panel pixels are original pixels); a panel is
    then ``(header + h, w)`` with ``header = max(16, round(0.06 * w))``; ``min(n, max_cols)``
    panels per row, rows top to bottom, in the order of ``result['datasets']``.

    Args:
        img (np.ndarray): The original image, shape (H, W), any intensity range.
        result (dict): One result of :class:`FXInferencer` (boxes and masks in (H, W)).
        class_names (dict): Dataset -> ``dict(cls_classes=..., det_classes=...,
            seg_classes=...)`` (``FoundationX.class_names``), for colours by class index.
        panel_size (int, optional): Long side of a panel's image. Defaults to 512.
        max_cols (int): Panels per row at most. Defaults to 4.

    Returns:
        np.ndarray: uint8 RGB canvas, shape (rows * (header + h), cols * w, 3).
    """
    ori_h, ori_w = img.shape[:2]
    scale = 1. if panel_size is None else panel_size / max(ori_h, ori_w)
    w, h = max(1, round(ori_w * scale)), max(1, round(ori_h * scale))
    if (w, h) != (ori_w, ori_h):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        img = cv2.resize(np.asarray(img, dtype=np.float32), (w, h), interpolation=interp)
    # (sx, sy, sx, sy): original -> panel pixels, exact per axis after rounding the size
    box_scale = np.array([w / ori_w, h / ori_h] * 2, dtype=np.float32)
    panels = []
    for name, preds in result['datasets'].items():
        classes = class_names[name]
        kwargs = dict(det_classes=classes['det_classes'], seg_classes=classes['seg_classes'])
        if 'cls' in preds:
            kwargs['cls_scores'] = preds['cls']
        if preds.get('loc'):
            kwargs.update(
                boxes=np.array([box['bbox'] for box in preds['loc']], dtype=np.float32)
                * box_scale,
                box_labels=[classes['det_classes'].index(box['label']) for box in preds['loc']],
                box_scores=[box['score'] for box in preds['loc']])
        if 'seg' in preds:
            masks = np.zeros((len(classes['seg_classes']), h, w), dtype=np.uint8)
            for k, seg_class in enumerate(classes['seg_classes']):
                if seg_class in preds['seg']:
                    mask = decode_mask(preds['seg'][seg_class]['rle'], ori_h, ori_w)
                    masks[k] = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
            kwargs['masks'] = masks
        panels.append((name, draw_cxr(img, **kwargs)))
    if not panels:
        panels.append(('no outputs', draw_cxr(img)))

    header = max(16, round(_HEADER_FRACTION * w))
    cols = min(len(panels), max_cols)
    rows = math.ceil(len(panels) / cols)
    canvas = np.zeros((rows * (header + h), cols * w, 3), dtype=np.uint8)
    font = header / 40.
    for i, (name, panel) in enumerate(panels):
        top, left = (i // cols) * (header + h), (i % cols) * w
        canvas[top:top + header, left:left + w] = 40  # dark grey bar
        cv2.putText(canvas, name, (left + 4, top + int(header * 0.75)),
                    cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), max(1, round(font * 2)),
                    cv2.LINE_AA)
        canvas[top + header:top + header + h, left:left + w] = panel
    return canvas


class FXInferencer(BaseInferencer):
    """Run a Foundation X model on chest X-ray files (DICOM, PNG, JPEG, MHA/NRRD, JSRT .IMG).

    The mmdet ``DetInferencer`` pattern: the model comes from a config and a checkpoint, the
    test pipeline is built here (``LoadCXRImage`` -> ``CXRResize`` to the model's input size ->
    ``PackCXRInputs``), images are batched, and one call returns JSON-ready results (and
    writes them with ``out_dir``, see the module docstring). A file that cannot be read or
    processed is logged with the reason, listed in ``errors`` and skipped; the rest of its
    batch still runs.

    Example::

        >>> inferencer = FXInferencer('configs/foundation_x_demo.py', 'best.pth')
        >>> out = inferencer('data/phantoms/phantom_ptx/images/test', out_dir='infer')
        >>> out['predictions'][0]['datasets']['phantom_ptx']['cls']
        {'pneumothorax': 0.91}

    Args:
        model (str | Config): Config file path or Config. Its ``model`` is a ``FoundationX``
            or a ``TeacherStudent`` (whose inner ``FoundationX`` is built, once).
        weights (str, optional): Checkpoint path; its ``state_dict`` (or the whole file) is
            loaded strictly. A ``TeacherStudent`` checkpoint gives the copy named by ``use``.
            None keeps the random initialisation (with a warning).
        device (str, optional): ``'cpu'``, ``'cuda'``, ``'cuda:1'`` ...; None picks CUDA when
            available. Defaults to None.
        img_size (int | tuple[int, int], optional): Network input size, ``CXRResize``'s
            ``scale`` (an int or (W, H)); None takes it from the config's test pipeline.
        score_thr (float): Boxes scoring below it are left out of results and overlays.
            Defaults to 0.3.
        batch_size (int): Images per forward pass. Defaults to 4.
        use (str, optional): ``'teacher'`` or ``'student'`` for a TeacherStudent checkpoint;
            None takes the teacher when present. Defaults to None.
        panel_size (int, optional): Long side of each overlay panel; None keeps the original
            image size. Defaults to 512.
        show_progress (bool): Show a progress bar. Defaults to True.
    """

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 img_size: Optional[Union[int, Tuple[int, int]]] = None,
                 score_thr: float = 0.3,
                 batch_size: int = 4,
                 use: Optional[str] = None,
                 panel_size: Optional[int] = 512,
                 show_progress: bool = True) -> None:
        if not 0. <= score_thr <= 1.:
            raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive int, got {batch_size!r}')
        if use is not None and use not in MODEL_COPIES:
            raise ValueError(f'use must be one of {MODEL_COPIES} or None, got {use!r}')
        if isinstance(model, str) and not osp.isfile(model):
            raise FileNotFoundError(f'config file {model!r} does not exist')
        if weights is not None and not osp.isfile(weights):
            raise FileNotFoundError(f'checkpoint {weights!r} does not exist')
        register_all_modules(init_default_scope=False)
        self.img_size = img_size
        self.score_thr = score_thr
        self.batch_size = batch_size
        self.use = use
        self.panel_size = panel_size
        #: the checkpoint copy that was loaded: 'teacher', 'student' or None (plain)
        self.loaded_copy: Optional[str] = None
        self.weights = weights
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        super().__init__(model=model, weights=weights, device=device, scope='fxmm',
                         show_progress=show_progress)

    # ------------------------------------------------------------------ set-up
    def _init_model(self, cfg: Config, weights: Optional[str], device: str) -> FoundationX:
        """Build the FoundationX of ``cfg.model`` and load ``weights`` into it, strictly."""
        with DefaultScope.overwrite_default_scope('fxmm'):
            model = MODELS.build(_foundation_x_cfg(cfg.model))
        if not isinstance(model, FoundationX):
            raise TypeError(f'FXInferencer needs a FoundationX (or TeacherStudent) model, the '
                            f'config builds a {type(model).__name__}')
        if weights is None:
            print_log('FXInferencer: no weights given, the model keeps its random '
                      'initialisation', logger='current', level=logging.WARNING)
        else:
            checkpoint = _load_checkpoint(weights, map_location='cpu')
            state_dict, self.loaded_copy = select_model_copy(
                checkpoint.get('state_dict', checkpoint), self.use)
            try:
                _load_checkpoint_to_model(model, state_dict, strict=True)
            except RuntimeError as e:
                raise RuntimeError(f'checkpoint {weights!r} does not match the model of the '
                                   f'config: {e}') from e
            which = f' ({self.loaded_copy} copy)' if self.loaded_copy else ''
            print_log(f'FXInferencer: loaded {weights}{which}', logger='current')
        return model.to(device).eval()

    def _init_pipeline(self, cfg: Config) -> Compose:
        """Build ``self.loader`` (``LoadCXRImage``) and return ``CXRResize`` ->
        ``PackCXRInputs``; the image is kept between the two for the overlays.

        ``LoadCXRImage`` keeps the intensity settings of the config's test pipeline (the
        model was trained with them) but always raises on a bad file; ``CXRResize`` keeps
        the config's ``keep_ratio``/``interpolation``, its ``scale`` being ``img_size`` when
        given.
        """
        found = find_test_transforms(cfg)
        load = found.get('LoadCXRImage', dict(type='LoadCXRImage'))
        load.update(ignore_empty=False, channels=1)
        resize = found.get('CXRResize')
        if self.img_size is not None:
            resize = dict(resize or dict(type='CXRResize'), scale=self.img_size)
        if resize is None:
            raise ValueError('FXInferencer: no CXRResize in the config\'s test_pipeline or '
                             'test_dataloader pipelines, so the input size is unknown; pass '
                             'img_size')
        self.loader = TRANSFORMS.build(load)
        return Compose([TRANSFORMS.build(resize),
                        TRANSFORMS.build(dict(type='PackCXRInputs', meta_keys=_META_KEYS))])

    def _init_collate(self, cfg: Config):
        """Batches are lists of packed samples (the config's collate_fn is for training)."""
        return pseudo_collate

    def _init_visualizer(self, cfg: Config) -> None:
        """Overlays are drawn by :func:`draw_overlay`, not by a config visualizer."""
        return None

    # ------------------------------------------------------------------ inputs
    def _inputs_to_list(self, inputs: InputsType, exclude: Optional[str] = None) -> List[str]:
        """Expand ``inputs`` (a file, a folder, or a list of them) into file paths.

        A folder is scanned recursively, in sorted order, for files whose suffix is one of
        :data:`IMAGE_SUFFIXES` (any case) or that have no suffix (DICOM files often have
        none, or are named by their UID: a numeric suffix counts as none); hidden files and
        anything under ``exclude`` (the output folder) are skipped. A path that is neither
        file nor folder is kept, so that it is reported as an error.
        """
        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        exclude = osp.abspath(exclude) + os.sep if exclude else None
        paths = []
        for item in map(str, inputs):
            if not osp.isdir(item):
                paths.append(item)
                continue
            found = []
            for root, dirs, files in os.walk(item):
                dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
                for name in sorted(files):
                    path = osp.join(root, name)
                    suffix = osp.splitext(name)[1].lower()
                    if suffix[1:].isdigit():  # a DICOM named by its UID, 1.2.840.1
                        suffix = ''
                    if (name.startswith('.') or (suffix and suffix not in IMAGE_SUFFIXES)
                            or (exclude and osp.abspath(path).startswith(exclude))):
                        continue
                    found.append(path)
            if not found:
                raise ValueError(f'no image files in folder {item!r} (looked for suffixes '
                                 f'{IMAGE_SUFFIXES} and files without a suffix)')
            paths.extend(found)
        return paths

    def preprocess(self, inputs: List[str], batch_size: int = 1
                   ) -> Iterator[Tuple[Optional[dict], List[np.ndarray], List[dict]]]:
        """Load and pack the files, ``batch_size`` at a time.

        Yields:
            tuple: ``(data, images, errors)`` per chunk of ``batch_size`` paths: the collated
            batch of the readable files (None if none was), their original images (H, W)
            float32 in 0..1, and ``{'img_path', 'error'}`` for the others.
        """
        for chunk in self._get_chunk_data(inputs, batch_size):
            packed, images, errors = [], [], []
            for path in chunk:
                try:
                    results = self.loader(dict(img_path=path))
                    image = results['img']
                    packed.append(self.pipeline(results))
                except Exception as e:  # any bad file is reported, never stops the batch
                    errors.append(dict(img_path=path, error=_reason(e)))
                    print_log(f'FXInferencer skips {path}: {_reason(e)}', logger='current',
                              level=logging.WARNING)
                    continue
                images.append(image)
            yield (self.collate_fn(packed) if packed else None), images, errors

    # ------------------------------------------------------------------ model
    @torch.no_grad()
    def forward(self, data: dict) -> List[CXRDataSample]:
        """Predict with every head of every dataset on one backbone pass.

        Args:
            data (dict): ``inputs`` (list of B tensors (1, H, W)) and ``data_samples``.

        Returns:
            list[CXRDataSample]: B samples with the ``all_preds`` field (see FoundationX).
        """
        data = self.model.data_preprocessor(data, False)
        return self.model(**data, mode='predict', heads='all')

    # ------------------------------------------------------------------ outputs
    def postprocess(self, preds: List[CXRDataSample], tasks: Sequence[str] = TASKS,
                    datasets: Optional[Sequence[str]] = None) -> List[dict]:
        """Turn predicted samples into JSON-ready results (see the module docstring).

        Args:
            preds (list[CXRDataSample]): Output of :meth:`forward`.
            tasks (Sequence[str]): The tasks to report. Defaults to all.
            datasets (Sequence[str], optional): The datasets to report; None for all.

        Returns:
            list[dict]: One result per sample; a dataset with none of ``tasks`` is left out.
        """
        names = list(self.model.class_names) if datasets is None else list(datasets)
        results = []
        for sample in preds:
            report = {}
            for name in names:
                preds_of = sample.all_preds.get(name, {})
                classes = self.model.class_names[name]
                entry = {task: self._task_result(preds_of[task], classes[CLASS_KEYS[task]], task)
                         for task in tasks if task in preds_of}
                if entry:
                    report[name] = entry
            results.append(dict(img_path=sample.img_path,
                                ori_shape=[int(s) for s in sample.ori_shape[:2]],
                                datasets=report))
        return results

    def _task_result(self, pred, classes: List[str], task: str):
        """One dataset's output of one task: probabilities, boxes or masks."""
        if task == 'cls':  # Tensor (C,)
            return {name: float(p) for name, p in zip(classes, pred.cpu().tolist())}
        if task == 'loc':  # InstanceData bboxes (N, 4), scores (N,), labels (N,)
            keep = pred.scores >= self.score_thr
            return [dict(bbox=[round(v, 2) for v in box], label=classes[int(label)],
                         score=float(score))
                    for box, score, label in zip(pred.bboxes[keep].cpu().tolist(),
                                                 pred.scores[keep].cpu().tolist(),
                                                 pred.labels[keep].cpu().tolist())]
        masks = pred.data.cpu().numpy()  # bool (K, H_ori, W_ori)
        return {name: dict(area_px=int(mask.sum()), rle=encode_mask(mask))
                for name, mask in zip(classes, masks)}

    def visualize(self, images: List[np.ndarray], results: List[dict]) -> List[np.ndarray]:
        """Overlays of ``results`` on their original ``images`` (see :func:`draw_overlay`).

        Returns:
            list[np.ndarray]: uint8 RGB canvases.
        """
        return [draw_overlay(img, result, self.model.class_names, self.panel_size)
                for img, result in zip(images, results)]

    # ------------------------------------------------------------------ the call
    def __call__(self,
                 inputs: InputsType,
                 out_dir: Optional[str] = None,
                 save_json: bool = True,
                 save_csv: bool = True,
                 save_overlays: bool = True,
                 heads: Union[str, Sequence[str]] = 'all',
                 datasets: Optional[Sequence[str]] = None) -> dict:
        """Run inference on files.

        Args:
            inputs (str | Sequence[str]): A file, a folder (scanned recursively, see
                :meth:`_inputs_to_list`), or a list of files/folders.
            out_dir (str, optional): Where ``predictions.json``, ``predictions.csv`` and
                ``overlays/`` go; None writes nothing. Defaults to None.
            save_json (bool): Write predictions.json (with ``out_dir``). Defaults to True.
            save_csv (bool): Write predictions.csv (with ``out_dir``). Defaults to True.
            save_overlays (bool): Write ``overlays/<stem>.png`` (with ``out_dir``; a stem seen
                before gets ``-1``, ``-2``, ...). Defaults to True.
            heads (str | Sequence[str]): ``'all'`` or the tasks to report, from
                ``('cls', 'loc', 'seg')``. Defaults to ``'all'``.
            datasets (Sequence[str], optional): The datasets to report (names of the model's
                ``datasets``); None for all. Defaults to None.

        Returns:
            dict: ``predictions`` (list of results, in input order) and ``errors`` (list of
            ``{'img_path', 'error'}``).
        """
        tasks = TASKS if heads == 'all' else tuple(
            check_task(task) for task in ([heads] if isinstance(heads, str) else heads))
        if datasets is not None:
            unknown = [name for name in datasets if name not in self.model.class_names]
            if unknown:
                raise ValueError(f'unknown dataset(s) {unknown}; the model has '
                                 f'{list(self.model.class_names)}')
        paths = self._inputs_to_list(inputs, exclude=out_dir)
        overlay_dir = osp.join(out_dir, 'overlays') if out_dir and save_overlays else None
        predictions, errors, used_names = [], [], set()
        progress = ProgressBar(len(paths), file=sys.stdout) if self.show_progress else None
        for data, images, chunk_errors in self.preprocess(paths, self.batch_size):
            errors.extend(chunk_errors)
            if data is not None:
                results = self.postprocess(self.forward(data), tasks, datasets)
                if overlay_dir:
                    for result, canvas in zip(results, self.visualize(images, results)):
                        result['overlay'] = self._overlay_path(overlay_dir, result, used_names)
                        atomic_write_bytes(_png_bytes(canvas), result['overlay'])
                predictions.extend(results)
            if progress is not None:
                progress.update(len(images) + len(chunk_errors))
        if progress is not None:
            progress.file.write('\n')
        output = dict(predictions=predictions, errors=errors)
        if out_dir:
            self._save(output, out_dir, save_json, save_csv)
        print_log(f'FXInferencer: {len(predictions)} image(s) ok, {len(errors)} failed'
                  + (f'; outputs in {out_dir}' if out_dir else ''), logger='current')
        return output

    @staticmethod
    def _overlay_path(overlay_dir: str, result: dict, used_names: set) -> str:
        """``<overlay_dir>/<stem>.png``, made unique within this call."""
        stem = osp.splitext(osp.basename(result['img_path']))[0] or 'image'
        name, n = stem, 0
        while name in used_names:
            n += 1
            name = f'{stem}-{n}'
        used_names.add(name)
        return osp.join(overlay_dir, f'{name}.png')

    def _save(self, output: dict, out_dir: str, save_json: bool, save_csv: bool) -> None:
        """Write predictions.json and predictions.csv into ``out_dir``."""
        if save_json:
            config = self.cfg.filename if isinstance(self.cfg, Config) else None
            meta = dict(config=config, weights=self.weights, model_copy=self.loaded_copy,
                        score_thr=self.score_thr,
                        pipeline=[repr(self.loader)] + [repr(t) for t in self.pipeline.transforms])
            text = json.dumps(dict(meta=meta, **output), indent=1)
            atomic_write_bytes(text.encode('utf-8'), osp.join(out_dir, 'predictions.json'))
        if save_csv:
            atomic_write_bytes(predictions_to_csv(output).encode('utf-8'),
                               osp.join(out_dir, 'predictions.csv'))


def predictions_to_csv(output: dict) -> str:
    """The rows of predictions.csv (columns :data:`CSV_FIELDS`, see the module docstring).

    Args:
        output (dict): ``{'predictions': [...], 'errors': [...]}`` of :class:`FXInferencer`.

    Returns:
        str: CSV text with a header line.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator='\n')
    writer.writeheader()
    for result in output['predictions']:
        for name, preds in result['datasets'].items():
            row = dict(img_path=result['img_path'], dataset=name)
            for cls_name, prob in preds.get('cls', {}).items():
                writer.writerow(dict(row, task='cls', **{'class': cls_name}, score=prob))
            for box in preds.get('loc', []):
                x1, y1, x2, y2 = box['bbox']
                writer.writerow(dict(row, task='loc', **{'class': box['label']},
                                     score=box['score'], x1=x1, y1=y1, x2=x2, y2=y2))
            for seg_name, mask in preds.get('seg', {}).items():
                writer.writerow(dict(row, task='seg', **{'class': seg_name},
                                     area_px=mask['area_px']))
    for error in output['errors']:
        writer.writerow(dict(img_path=error['img_path'], error=error['error']))
    return buffer.getvalue()


__all__ = ['FXInferencer', 'draw_overlay', 'find_test_transforms', 'predictions_to_csv',
           'select_model_copy', 'CSV_FIELDS', 'IMAGE_SUFFIXES', 'MODEL_COPIES']
