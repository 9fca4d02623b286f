"""Foundation X: one Swin backbone, per-dataset cls / loc / seg heads, one task per batch.

Foundation X (Islam et al., WACV 2025, https://arxiv.org/abs/2503.09860).
"""
from typing import Dict, List, Optional, Tuple, Union

from mmengine.model import BaseModel
from mmengine.structures import LabelData
from torch import Tensor

from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import (CLASS_KEYS, TASKS, CXRDataSample, check_task,
                                             pair_name)
from .backbones import use_non_reentrant_checkpoint
from .data_preprocessors.cxr_data_preprocessor import batch_pair

# the data-sample field each task's predictions go to in predict(heads='task')
PRED_FIELDS = dict(cls='pred_cls', loc='pred_instances', seg='pred_seg_masks')
PREDICT_HEADS = ('task', 'all')


@MODELS.register_module()
class FoundationX(BaseModel):
    """The Foundation X multi-task, multi-dataset chest X-ray model (the student).

    One backbone pass per batch; the batch's (dataset, task) pair, read from its data samples'
    metainfo, selects the path:

    - ``cls``: global average pool of the last stage (B, C) -> ``cls_head`` of the dataset.
    - ``loc``: the 4 stages -> ``loc_head`` (a ``SharedDINO``: shared encoder, per-dataset
      decoder).
    - ``seg``: the 4 stages -> ``seg_neck`` (shared decoder, stride-4 map: ``SharedUperNet``,
      or the authors' ``PSPFPNNeck``) -> ``seg_head`` of the dataset, logits at input size.

    Each path reads the backbone's outputs through :meth:`task_feats`: as the backbone gives
    them, or, with a backbone that normalises per task (``TaskNormSwinTransformer``, the
    authors' released model), with that task's stage norms.

    Modules of other paths and other datasets' heads are not run, so they get no gradient
    (DDP needs ``find_unused_parameters=True``). Losses are keyed
    ``'<dataset>.<task>.<loss name>'``, e.g. ``'siim.seg.loss_dice'``.

    The class lists are stated once, in ``datasets``; the model passes each task head
    ``dataset_classes=dict(<dataset>=<number of classes>)`` over the datasets that have
    classes for its task, so head configs must not set ``dataset_classes``. A task's head
    (and, for ``seg``, the shared decoder) is built iff some dataset has that task: a head
    configured for a task no dataset has is left out (``None``), and a dataset with classes
    for a task whose head is not configured is an error.

    :meth:`shared_modules` names, per task, the modules that every dataset of the task shares
    (what ``LockReleaseHook`` freezes by default).

    Prediction (``predict``) writes, per data sample:

    - ``heads='task'`` (the evaluation loop's mode): the batch pair's output only -
      ``pred_cls`` (LabelData, ``score`` (C,) probabilities), ``pred_instances`` (InstanceData
      ``bboxes`` (N, 4) xyxy in original-image pixels, ``scores``, ``labels``) or
      ``pred_seg_masks`` (PixelData ``data`` bool / ``score`` float, (K, H_ori, W_ori)).
    - ``heads='all'`` (inference on any image, one backbone pass): a data field
      ``all_preds``, a dict ``{dataset: {'cls': Tensor (C,), 'loc': InstanceData,
      'seg': PixelData}}`` holding, for every dataset, the tasks it has.

    Args:
        backbone (dict): Backbone config returning 4 channels-first maps, strides 4..32, e.g.
            ``dict(type='mmpretrain.SwinTransformer', arch='base', out_indices=(0, 1, 2, 3))``.
            A backbone with a ``task_outputs(feats, task)`` method (``TaskNormSwinTransformer``)
            gives each task's path its own view of the maps (:meth:`task_feats`).
            Its Swin blocks are made :class:`~fxmm.models.backbones.NonReentrantSwinBlock`,
            so that ``with_cp=True`` works under DDP (same parameters and state dict keys).
        datasets (dict[str, dict]): Dataset name -> ``dict(cls_classes=[...],
            det_classes=[...], seg_classes=[...], tasks=[...])``; absent or empty lists mean
            the dataset has no such task. ``tasks`` (optional) names the tasks the model has
            heads for on that dataset, by default every task with classes; the class lists
            of the other tasks are then left out (e.g. a dataset with boxes trained for
            classification only: ``tasks=['cls']``). Names may not contain '.'.
        cls_head (dict, optional): ``MultiDatasetClsHead`` config (no ``dataset_classes``).
        loc_head (dict, optional): ``SharedDINO`` config (no ``dataset_classes``); it must
            offer ``loss(feats, data_samples, dataset)``,
            ``predict(feats, data_samples, dataset, rescale)`` and
            ``predict_datasets(feats, data_samples, datasets, rescale)`` (one encoder run
            for several datasets' decoders), and name its shared parts in
            ``shared_modules``.
        seg_neck (dict, optional): The shared seg decoder, ``SharedUperNet`` or
            ``PSPFPNNeck`` config; needed with ``seg_head``.
        seg_head (dict, optional): ``MultiDatasetSegHead`` config (no ``dataset_classes``).
        data_preprocessor (dict, optional): Defaults to ``dict(type='CXRDataPreprocessor')``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 datasets: Dict[str, dict],
                 cls_head: Optional[dict] = None,
                 loc_head: Optional[dict] = None,
                 seg_neck: Optional[dict] = None,
                 seg_head: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='CXRDataPreprocessor')
        # built here, in fxmm's registry, so no default scope is needed
        super().__init__(data_preprocessor=MODELS.build(data_preprocessor), init_cfg=init_cfg)
        #: dataset -> dict(cls_classes=[...], det_classes=[...], seg_classes=[...])
        #: (the lists of tasks left out by a ``tasks`` entry are empty)
        self.class_names = self._check_datasets(datasets)
        #: task -> names of the datasets that have a head for it, in ``datasets`` order
        self.task_datasets = {
            task: [name for name, classes in self.class_names.items()
                   if classes[CLASS_KEYS[task]]]
            for task in TASKS
        }
        if (seg_neck is None) != (seg_head is None):
            raise ValueError('FoundationX: seg_neck and seg_head go together; got only '
                             f"{'seg_neck' if seg_head is None else 'seg_head'}")
        self.backbone = MODELS.build(backbone)
        # mmpretrain's Swin checkpoints (with_cp) in reentrant mode, which DDP rejects
        use_non_reentrant_checkpoint(self.backbone)
        self.cls_head = self._build_task_head('cls', cls_head)
        self.loc_head = self._build_task_head('loc', loc_head)
        # the seg decoder is built first, as its place in the state dict
        self.seg_neck = (MODELS.build(seg_neck) if seg_neck is not None
                         and self.task_datasets['seg'] else None)
        self.seg_head = self._build_task_head('seg', seg_head)

    @staticmethod
    def _check_datasets(datasets: Dict[str, dict]) -> Dict[str, Dict[str, list]]:
        """Validate ``datasets``; the class lists of every dataset, [] where absent or
        left out by its ``tasks``."""
        if not datasets:
            raise ValueError('FoundationX needs at least one entry in `datasets`')
        allowed = (*CLASS_KEYS.values(), 'tasks')
        checked = {}
        for name, entry in datasets.items():
            if not isinstance(name, str) or not name or '.' in name:
                raise ValueError(f'FoundationX: dataset name {name!r} must be a non-empty '
                                 "string without '.' (keys are '<dataset>.<task>')")
            unknown = set(entry) - set(allowed)
            if unknown:
                raise ValueError(f'FoundationX: datasets[{name!r}] has unknown keys '
                                 f'{sorted(unknown)}; allowed: {sorted(allowed)}')
            classes = {task: list(entry.get(key) or []) for task, key in CLASS_KEYS.items()}
            tasks = entry.get('tasks')
            if tasks is not None:
                if isinstance(tasks, str):
                    raise ValueError(f'FoundationX: datasets[{name!r}].tasks must be a list of '
                                     f'tasks, got the string {tasks!r}')
                for task in tasks:
                    check_task(task)
                    if not classes[task]:
                        raise ValueError(f'FoundationX: datasets[{name!r}] has {task!r} in '
                                         f'`tasks` but no {CLASS_KEYS[task]}')
                classes = {task: lists if task in tasks else []
                           for task, lists in classes.items()}
            if not any(classes.values()):
                raise ValueError(f'FoundationX: datasets[{name!r}] has no classes for any task')
            checked[name] = {CLASS_KEYS[task]: lists for task, lists in classes.items()}
        return checked

    def _build_task_head(self, task: str, cfg: Optional[dict]):
        """Build ``task``'s head with ``dataset_classes`` from ``datasets``; None when no
        dataset has the task."""
        names = self.task_datasets[task]
        if cfg is None:
            if names:
                raise ValueError(f'FoundationX: datasets {names} have {CLASS_KEYS[task]} but '
                                 f'no {task} head is configured')
            return None
        if not names:
            return None
        if 'dataset_classes' in cfg:
            raise ValueError(f'FoundationX: do not set dataset_classes in the {task} head '
                             f'config; it is derived from the {CLASS_KEYS[task]} of `datasets`')
        dataset_classes = {name: len(self.class_names[name][CLASS_KEYS[task]])
                           for name in names}
        return MODELS.build(dict(cfg, dataset_classes=dataset_classes))

    @property
    def with_cls(self) -> bool:
        """bool: whether the model has a classification path."""
        return self.cls_head is not None

    @property
    def with_loc(self) -> bool:
        """bool: whether the model has a localisation path."""
        return self.loc_head is not None

    @property
    def with_seg(self) -> bool:
        """bool: whether the model has a segmentation path."""
        return self.seg_head is not None

    def shared_modules(self, task: str) -> Tuple[str, ...]:
        """The modules ``task``'s path shares between its datasets, as prefixes of the
        parameter names: ``cls`` the backbone; ``loc`` the backbone and the shared part of
        ``loc_head`` (its ``shared_modules``: for ``SharedDINO`` the input projection, level
        embedding and encoder); ``seg`` the backbone and ``seg_neck``. Every dataset's own
        head is left out.

        Args:
            task (str): ``'cls'``, ``'loc'`` or ``'seg'``.

        Returns:
            tuple[str]: e.g. ``('backbone', 'seg_neck')``.

        Raises:
            ValueError: the model has no path for ``task`` (no dataset has it).
        """
        check_task(task)
        head = dict(cls=self.cls_head, loc=self.loc_head, seg=self.seg_head)[task]
        if head is None:
            raise ValueError(f'FoundationX has no {task} path: no dataset has '
                             f'{CLASS_KEYS[task]}')
        if task == 'loc':
            return ('backbone', *(f'loc_head.{name}' for name in self.loc_head.shared_modules))
        return ('backbone', 'seg_neck') if task == 'seg' else ('backbone', )

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Run the backbone.

        Args:
            inputs (Tensor): Normalised images, shape (B, 3, H, W).

        Returns:
            tuple[Tensor]: 4 maps (B, C_i, H / s_i, W / s_i), strides s_i = 4, 8, 16, 32
            (C_i = 128, 256, 512, 1024 for Swin-B).
        """
        return self.backbone(inputs)

    def task_feats(self, feats: Tuple[Tensor, ...], task: str) -> Tuple[Tensor, ...]:
        """The backbone maps as ``task``'s path reads them: the backbone's
        ``task_outputs(feats, task)`` where it has one (per-task stage norms), else ``feats``.

        Args:
            feats (tuple[Tensor]): Backbone maps from :meth:`extract_feat`.
            task (str): ``'cls'``, ``'loc'`` or ``'seg'``.

        Returns:
            tuple[Tensor]: The same shapes as ``feats``.
        """
        task_outputs = getattr(self.backbone, 'task_outputs', None)
        return tuple(feats) if task_outputs is None else task_outputs(feats, task)

    def pooled_features(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Global average pool of the last stage: the cls heads' input (and the feature
        Foundation X's cls consistency loss compares).

        Args:
            feats (tuple[Tensor]): Backbone maps from :meth:`extract_feat`.

        Returns:
            Tensor: Shape (B, C_4) (1024 for Swin-B).
        """
        return self.task_feats(feats, 'cls')[-1].mean(dim=(2, 3))

    def loc_features(self, feats: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """The maps the localisation head reads (``loc_head`` picks its stages).

        Args:
            feats (tuple[Tensor]): Backbone maps from :meth:`extract_feat`.

        Returns:
            tuple[Tensor]: The same shapes as ``feats``.
        """
        return self.task_feats(feats, 'loc')

    def seg_features(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """The shared seg decoder's feature: the seg heads' input (its L2-normalised form is
        what Foundation X's seg consistency loss compares).

        Args:
            feats (tuple[Tensor]): Backbone maps from :meth:`extract_feat`.

        Returns:
            Tensor: Shape (B, channels, H/4, W/4).
        """
        return self.seg_neck(self.task_feats(feats, 'seg'))

    def _pair_of(self, data_samples: List[CXRDataSample]) -> Tuple[str, str]:
        """The batch's (dataset, task), checked against the model's heads."""
        dataset, task = batch_pair(data_samples)
        if dataset is None or task is None:
            raise ValueError("FoundationX: data samples need metainfo 'dataset' and 'task' "
                             '(set by CXRDataset and PackCXRInputs) for loss and '
                             "predict(heads='task'); predict(heads='all') works without them")
        check_task(task)
        if dataset not in self.task_datasets[task]:
            raise ValueError(f'FoundationX has no {task} head for dataset {dataset!r}; '
                             f'{task} datasets: {self.task_datasets[task]}')
        return dataset, task

    def loss(self, inputs: Tensor, data_samples: List[CXRDataSample]) -> Dict[str, Tensor]:
        """Losses of the batch's (dataset, task) pair.

        Args:
            inputs (Tensor): Normalised images, shape (B, 3, H, W).
            data_samples (list[CXRDataSample]): One pair's samples with the gt of its task.

        Returns:
            dict[str, Tensor]: Losses keyed ``'<dataset>.<task>.<loss name>'``.
        """
        dataset, task = self._pair_of(data_samples)
        feats = self.extract_feat(inputs)
        if task == 'cls':
            losses = self.cls_head.loss(self.pooled_features(feats), data_samples, dataset)
        elif task == 'loc':
            losses = self.loc_head.loss(self.loc_features(feats), data_samples, dataset)
        else:
            losses = self.seg_head.loss(self.seg_features(feats), data_samples, dataset)
        prefix = pair_name(dataset, task)
        return {f'{prefix}.{name}': value for name, value in losses.items()}

    def predict(self,
                inputs: Tensor,
                data_samples: List[CXRDataSample],
                heads: str = 'task') -> List[CXRDataSample]:
        """Predict with the batch pair's head (``heads='task'``) or with every head
        (``heads='all'``), on one backbone pass; see the class docstring for the fields.

        Args:
            inputs (Tensor): Normalised images, shape (B, 3, H, W).
            data_samples (list[CXRDataSample]): Samples with metainfo ``img_shape``,
                ``ori_shape``, ``scale_factor`` and ``batch_input_shape``; ``dataset`` and
                ``task`` too for ``heads='task'``.
            heads (str): ``'task'`` or ``'all'``. Defaults to ``'task'``.

        Returns:
            list[CXRDataSample]: ``data_samples`` with the predictions written in.
        """
        if heads not in PREDICT_HEADS:
            raise ValueError(f'FoundationX.predict: heads must be one of {PREDICT_HEADS}, '
                             f'got {heads!r}')
        if heads == 'task':
            dataset, task = self._pair_of(data_samples)
            feats = self.extract_feat(inputs)
            results = self._predict_task(feats, data_samples, task, [dataset])[dataset]
            for sample, result in zip(data_samples, results):
                if task == 'cls':
                    result = LabelData(score=result)
                setattr(sample, PRED_FIELDS[task], result)
            return data_samples
        feats = self.extract_feat(inputs)
        all_preds = [{} for _ in data_samples]
        for task in TASKS:
            per_dataset = self._predict_task(feats, data_samples, task, self.task_datasets[task])
            for dataset, results in per_dataset.items():
                for preds, result in zip(all_preds, results):
                    preds.setdefault(dataset, {})[task] = result
        for sample, preds in zip(data_samples, all_preds):
            sample.set_field(preds, 'all_preds')
        return data_samples

    def _predict_task(self, feats: Tuple[Tensor, ...], data_samples: List[CXRDataSample],
                      task: str, datasets: List[str]) -> Dict[str, list]:
        """Per-image results of ``task`` for each of ``datasets``; the task's shared
        features (pooling, the seg decoder) are computed once.

        Returns:
            dict[str, list]: Dataset -> B results: Tensor (C,) scores (cls), InstanceData
            (loc) or PixelData (seg).
        """
        if not datasets:
            return {}
        if task == 'cls':
            pooled = self.pooled_features(feats)
            return {name: list(self.cls_head.predict(pooled, name)) for name in datasets}
        if task == 'loc':
            # one run of the shared encoder for every dataset's decoder
            return self.loc_head.predict_datasets(self.loc_features(feats), data_samples,
                                                  datasets, rescale=True)
        seg_feats = self.seg_features(feats)
        return {name: self.seg_head.predict(seg_feats, data_samples, name)
                for name in datasets}

    def _forward(self, inputs: Tensor,
                 data_samples: Optional[List[CXRDataSample]] = None) -> Dict[str, Tensor]:
        """Raw logits of every cls and seg head on one backbone pass (``mode='tensor'``, e.g.
        for FLOPs counting). The DINO path needs data samples and is left out.

        Args:
            inputs (Tensor): Normalised images, shape (B, 3, H, W).
            data_samples: Unused.

        Returns:
            dict[str, Tensor]: ``'<dataset>.cls'`` -> (B, C) logits and ``'<dataset>.seg'`` ->
            (B, K, H, W) logits.
        """
        feats = self.extract_feat(inputs)
        outs = {}
        if self.with_cls:
            pooled = self.pooled_features(feats)
            for name in self.task_datasets['cls']:
                outs[pair_name(name, 'cls')] = self.cls_head(pooled, name)
        if self.with_seg:
            seg_feats = self.seg_features(feats)
            for name in self.task_datasets['seg']:
                outs[pair_name(name, 'seg')] = self.seg_head(seg_feats, name, inputs.shape[-2:])
        return outs

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[CXRDataSample]] = None,
                mode: str = 'tensor',
                **kwargs) -> Union[Dict[str, Tensor], List[CXRDataSample]]:
        """The mmengine entry point: ``mode`` is ``'loss'``, ``'predict'`` (``kwargs`` go to
        :meth:`predict`, e.g. ``heads='all'``) or ``'tensor'``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples, **kwargs)
        if mode == 'tensor':
            return self._forward(inputs, data_samples)
        raise ValueError(f"FoundationX: invalid mode {mode!r}; use 'loss', 'predict' or "
                         "'tensor'")
