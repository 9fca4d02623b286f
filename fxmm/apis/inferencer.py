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
  :data:`~fxmm.apis.predictions_csv.CSV_FIELDS`: ``task='cls'`` rows give a class
  probability in ``score``, ``task='loc'`` rows a box (``class``, ``score``,
  ``x1``..``y2``), ``task='seg'`` rows a mask area in ``area_px``; a file that failed has
  one row with only ``img_path`` and ``error``.
- ``<out_dir>/overlays/<stem>.png``: one panel per dataset (see
  :func:`~fxmm.apis.overlay.draw_overlay`).

Every file is written to a temporary name and moved into place, so an interrupted run never
leaves a half-written file.
"""
import json
import logging
import os
import os.path as osp
import sys
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from mmengine.utils import ProgressBar

from fxmm.datasets.image_io import CXRImageError, FORMAT_OF_SUFFIX
from fxmm.models.foundation_x import FoundationX
from fxmm.models.teacher_student import COPIES, inner_model_cfg, select_copy
from fxmm.registry import MODELS, TRANSFORMS
from fxmm.structures.cxr_data_sample import CLASS_KEYS, TASKS, CXRDataSample, check_task
from fxmm.structures.mask_rle import encode_mask
from fxmm.utils import register_all_modules
from fxmm.utils.atomic_io import atomic_write_bytes
from .model_setup import find_test_transforms
from .overlay import draw_overlay, overlay_png
from .predictions_csv import predictions_to_csv

InputsType = Union[str, Sequence[str]]
#: file suffixes a folder is scanned for (files without a suffix are read as bare DICOM)
IMAGE_SUFFIXES = tuple(sorted(FORMAT_OF_SUFFIX))
# the metainfo the inference pipeline packs (no dataset/task: every head runs)
_META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'scale_factor')


def _reason(error: Exception) -> str:
    """The message of a failure; a CXRImageError's already names the file and the reason."""
    return str(error) if isinstance(error, CXRImageError) else f'{type(error).__name__}: {error}'


class FXInferencer(BaseInferencer):
    """Run a Foundation X model on chest X-ray files (DICOM, PNG, JPEG, MHA/NRRD, JSRT .IMG).

    The mmdet ``DetInferencer`` pattern: the model comes from a config and a checkpoint, the
    test pipeline is built here (``LoadCXRImage`` -> ``CXRResize`` to the model's input size ->
    ``PackCXRInputs``), images are batched, and one call returns JSON-ready results (and
    writes them with ``out_dir``, see the module docstring). A file that cannot be read or
    put through the pipeline is logged with the reason, listed in ``errors`` and skipped;
    the rest of its batch still runs. An error of the model itself stops the call.

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
        if use is not None and use not in COPIES:
            raise ValueError(f'use must be one of {COPIES} or None, got {use!r}')
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
            model = MODELS.build(inner_model_cfg(cfg.model))
        if not isinstance(model, FoundationX):
            raise TypeError(f'FXInferencer needs a FoundationX (or TeacherStudent) model, the '
                            f'config builds a {type(model).__name__}')
        if weights is None:
            print_log('FXInferencer: no weights given, the model keeps its random '
                      'initialisation', logger='current', level=logging.WARNING)
        else:
            checkpoint = _load_checkpoint(weights, map_location='cpu')
            state_dict, self.loaded_copy = select_copy(
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
        model was trained with them) but always raises on a bad file and normalises at once
        (the overlays are drawn on the whole normalised image); ``CXRResize`` keeps
        the config's ``keep_ratio``/``interpolation``, its ``scale`` being ``img_size`` when
        given.
        """
        found = find_test_transforms(cfg)
        load = found.get('LoadCXRImage', dict(type='LoadCXRImage'))
        load.update(ignore_empty=False, channels=1, defer_norm=False)
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
                        atomic_write_bytes(overlay_png(canvas), result['overlay'])
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
