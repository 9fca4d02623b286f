"""The models a benchmark compares, built from one config: Foundation X (with and without
its teacher) and, per task, the single-task OpenMMLab model with the same parts.

The single-task references come from the plain packages with the backbone dict and sizes
of the config's ``FoundationX``: mmpretrain ``ImageClassifier`` (Swin + global average pool
+ ``MultiLabelLinearClsHead``), mmdet ``DINO`` and mmseg ``EncoderDecoder`` with
``UPerHead``. The DINO and UperNet configs are those of :mod:`fxmm.apis.export_configs`
(``dino_config``, ``upernet_config``), which ``tools/model_converters`` export to, so a
reference is exactly the model an fxmm checkpoint of that dataset exports to.
"""
import copy
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData
from torch import nn

from fxmm.apis.export_configs import dino_config, split_scope, upernet_config
from fxmm.engine.optim_wrappers import AMP_VARIANTS
from fxmm.structures import CLASS_KEYS
from fxmm.structures.cxr_data_sample import TASKS
from fxmm.testing import demo_cxr_inputs
from fxmm.utils.setup_env import register_all_modules
from fxmm.apis import build_in_scope, foundation_x_cfg, image_preprocessor_cfg


def student_config(cfg: Config, size: int, with_cp: bool = False,
                   datasets: Optional[Dict[str, dict]] = None) -> dict:
    """The config's ``FoundationX`` at input ``size`` (Swin ``img_size``), with gradient
    checkpointing of the Swin stages on or off and, optionally, other ``datasets``."""
    student = foundation_x_cfg(cfg)
    student['backbone'] = dict(student['backbone'], img_size=size, with_cp=with_cp, init_cfg=None)
    if datasets is not None:
        student['datasets'] = copy.deepcopy(datasets)
    return student


def _ready(model: nn.Module, device: str) -> nn.Module:
    """Initialise (no files are read: init_cfg is None), move to ``device``, train mode."""
    model.init_weights()
    return model.to(device).train()


def build_fx(student_cfg: dict, device: str, teacher: bool = False,
             consistency_weight: float = 0.5) -> nn.Module:
    """A ``FoundationX`` or, with ``teacher``, a ``TeacherStudent`` around it (the teacher
    starts as a copy of the student)."""
    cfg = student_cfg
    if teacher:
        cfg = dict(type='TeacherStudent', model=student_cfg,
                   consistency_weight=consistency_weight)
    return _ready(build_in_scope(cfg, 'fxmm'), device)


def consistency_weight_of(cfg: Config) -> float:
    """The config's teacher consistency weight (0.5, FX's, when it has no teacher)."""
    weight = cfg.model.get('consistency_weight', 0.5) if cfg.model.get(
        'type') == 'TeacherStudent' else 0.5
    return weight if isinstance(weight, (int, float)) else 0.5


def reference_config(student: nn.Module, student_cfg: dict, task: str, dataset: str) -> Tuple[
        dict, str]:
    """The single-task OpenMMLab model of ``dataset``'s ``task`` head and its scope.

    Args:
        student (nn.Module): a built ``FoundationX`` of ``student_cfg``.
        student_cfg (dict): its config.
        task (str): ``'cls'``, ``'loc'`` or ``'seg'``.
        dataset (str): a dataset with a ``task`` head.
    """
    if task == 'loc':
        return dino_config(student, student_cfg, dataset), 'mmdet'
    if task == 'seg':
        return upernet_config(student, student_cfg, dataset), 'mmseg'
    backbone, scope = split_scope(dict(student_cfg['backbone'], init_cfg=None))
    if scope != 'mmpretrain':
        raise ValueError(f'the cls reference is an mmpretrain ImageClassifier; backbone '
                         f'{student_cfg["backbone"]["type"]} is not from mmpretrain')
    preprocessor = image_preprocessor_cfg(student, 'ClsDataPreprocessor', 'pad_size_divisor')
    preprocessor['to_rgb'] = preprocessor.pop('bgr_to_rgb')
    # FX pools the last stage it outputs; the classifier outputs only that one
    last_stage = max(student_cfg['backbone'].get('out_indices', (3, )))
    return dict(
        type='ImageClassifier',
        data_preprocessor=preprocessor,
        backbone=dict(backbone, out_indices=(last_stage, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='MultiLabelLinearClsHead',
                  num_classes=len(student.class_names[dataset][CLASS_KEYS[task]]),
                  in_channels=student.cls_head.in_channels,
                  loss=dict(type='CrossEntropyLoss', use_sigmoid=True))), scope


def build_reference(student: nn.Module, student_cfg: dict, task: str, dataset: str,
                    device: str) -> nn.Module:
    """Build :func:`reference_config` in its library, initialised, on ``device``."""
    cfg, scope = reference_config(student, student_cfg, task, dataset)
    # ConfigDict: mmseg reads test_cfg.mode as an attribute
    return _ready(build_in_scope(ConfigDict(cfg), scope), device)


def build_optimizer(model: nn.Module, cfg: Config, amp: bool = False):
    """The config's optim wrapper (optimiser, clipping, paramwise lr) for ``model``; with
    ``amp`` its AMP variant (bf16 autocast), as ``tools/train.py --amp`` makes it."""
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    if amp:
        kind = optim_cfg.get('type', 'OptimWrapper')
        optim_cfg['type'] = AMP_VARIANTS.get(kind, kind)
        optim_cfg['dtype'] = 'bfloat16'
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('fxmm'):
        return build_optim_wrapper(model, optim_cfg)


def task_dataset(student: nn.Module, task: str) -> Optional[str]:
    """The first dataset with a ``task`` head (the one a benchmark trains), None if none."""
    names = student.task_datasets[task]
    return names[0] if names else None


def fx_batch(student: nn.Module, task: str, dataset: str, size: int, batch_size: int,
             seed: int = 0) -> dict:
    """A packed fxmm batch of ``dataset``'s ``task`` (B grey (1, size, size) images)."""
    classes = student.class_names[dataset]
    return demo_cxr_inputs(batch_size=batch_size, size=size, task=task, dataset=dataset,
                           num_cls=max(len(classes['cls_classes']), 1),
                           num_det=max(len(classes['det_classes']), 1),
                           num_seg=max(len(classes['seg_classes']), 1), seed=seed)


def task_batches(student: nn.Module, size: int, batch_size: int,
                 tasks: Sequence[str] = TASKS) -> Iterator[Tuple[str, str, dict]]:
    """``(task, dataset, fx_batch)`` for each of ``tasks`` the model has, on the task's first
    dataset (the pair a benchmark trains)."""
    for task in tasks:
        dataset = task_dataset(student, task)
        if dataset is not None:
            yield task, dataset, fx_batch(student, task, dataset, size, batch_size)


def reference_batch(batch: dict, task: str) -> dict:
    """The same images and gt as :func:`fx_batch` in the reference library's format.

    Images become (3, H, W) float 0..255 (the references normalise with fxmm's mean and std
    x 255); cls labels multi-hot ``gt_score`` (unknown -> 0), boxes ``gt_instances``, masks
    a label map ``gt_sem_seg`` (1, H, W) (arg-max over the masks; one mask: 0/1).
    """
    inputs = [img.expand(3, -1, -1) * 255. for img in batch['inputs']]
    samples = []
    for sample in batch['data_samples']:
        meta = {k: sample.metainfo[k] for k in ('img_shape', 'ori_shape', 'scale_factor')}
        if task == 'cls':
            from mmpretrain.structures import DataSample
            label = sample.gt_cls.label
            out = DataSample(metainfo=meta).set_gt_score(torch.nan_to_num(label).clamp(min=0))
        elif task == 'loc':
            from mmdet.structures import DetDataSample
            out = DetDataSample(metainfo=meta)
            out.gt_instances = InstanceData(bboxes=sample.gt_instances.bboxes,
                                            labels=sample.gt_instances.labels)
        else:
            from mmseg.structures import SegDataSample
            masks = sample.gt_seg_masks.data
            label = masks[0] if len(masks) == 1 else masks.argmax(0)
            out = SegDataSample(metainfo=meta)
            out.gt_sem_seg = PixelData(data=label[None].long())
        samples.append(out)
    return dict(inputs=inputs, data_samples=samples)
