"""Fake packed batches and the demo's FoundationX config at unit-test size."""
import os.path as osp
from typing import Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData, LabelData, PixelData

from fxmm.structures.cxr_data_sample import CXRDataSample, check_task


def _hw(size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def demo_cxr_inputs(batch_size: int = 2,
                    size: Union[int, Tuple[int, int]] = 64,
                    task: str = 'cls',
                    dataset: str = 'demo',
                    num_cls: int = 3,
                    num_det: int = 2,
                    num_seg: int = 2,
                    seed: int = 0,
                    ori_size: Optional[Union[int, Tuple[int, int]]] = None) -> dict:
    """A packed batch of one (dataset, task) pair, as ``PackCXRInputs`` + pseudo_collate give.

    Images are random 0..1 grey maps; the gt of ``task`` only is filled:

    - cls: ``gt_cls.label`` float (num_cls,), entries 1 / 0 (80 %), nan (10 %), -1 (10 %);
    - loc: ``gt_instances`` with 1-3 boxes (xyxy, inside the image), labels < num_det;
    - seg: ``gt_seg_masks.data`` uint8 (num_seg, H, W), one random rectangle per mask.

    Args:
        batch_size (int): Number of images. Defaults to 2.
        size (int | tuple[int, int]): ``img_shape`` (H, W) of every image. Defaults to 64.
        task (str): One of ``fxmm.structures.TASKS``. Defaults to ``'cls'``.
        dataset (str): Metainfo ``dataset``. Defaults to ``'demo'``.
        num_cls (int): Number of cls classes. Defaults to 3.
        num_det (int): Number of det classes. Defaults to 2.
        num_seg (int): Number of seg classes (masks). Defaults to 2.
        seed (int): Seed of the local RNG. Defaults to 0.
        ori_size (int | tuple[int, int], optional): ``ori_shape`` before the (simulated)
            resize to ``size``; defaults to ``size``. ``scale_factor`` is set accordingly.

    Returns:
        dict: ``inputs``: list of float32 tensors (1, H, W); ``data_samples``: list of
        :class:`CXRDataSample`.
    """
    check_task(task)
    rng = np.random.default_rng(seed)
    h, w = _hw(size)
    ori_h, ori_w = _hw(ori_size if ori_size is not None else size)
    inputs, data_samples = [], []
    for idx in range(batch_size):
        inputs.append(torch.from_numpy(rng.random((1, h, w), dtype=np.float32)))
        sample = CXRDataSample(metainfo=dict(
            dataset=dataset, task=task, img_path=f'{dataset}/demo_{idx}.png',
            ori_shape=(ori_h, ori_w), img_shape=(h, w),
            scale_factor=(w / ori_w, h / ori_h), flip=False, sample_idx=idx))
        if task == 'cls':
            label = rng.choice([0., 1., np.nan, -1.], size=num_cls, p=[.4, .4, .1, .1])
            sample.gt_cls = LabelData(label=torch.from_numpy(label.astype(np.float32)))
        elif task == 'loc':
            num_boxes = int(rng.integers(1, 4))
            xy1 = rng.uniform(0, [w / 2, h / 2], size=(num_boxes, 2))
            xy2 = xy1 + rng.uniform(4, [w / 2, h / 2], size=(num_boxes, 2))
            sample.gt_instances = InstanceData(
                bboxes=torch.from_numpy(np.concatenate([xy1, xy2], 1).astype(np.float32)),
                labels=torch.from_numpy(rng.integers(0, num_det, num_boxes)))
        else:
            masks = np.zeros((num_seg, h, w), dtype=np.uint8)
            for mask in masks:
                y1, x1 = rng.integers(0, h // 2), rng.integers(0, w // 2)
                y2, x2 = rng.integers(y1 + 2, h + 1), rng.integers(x1 + 2, w + 1)
                mask[y1:y2, x1:x2] = 1
            sample.gt_seg_masks = PixelData(data=torch.from_numpy(masks))
        data_samples.append(sample)
    return dict(inputs=inputs, data_samples=data_samples)


def _config_dir() -> str:
    """fxmm's ``configs/``: the installed package's ``.mim/configs``, else the source
    tree's (a checkout used without ``pip install``)."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    installed = osp.join(package, '.mim', 'configs')
    return installed if osp.isdir(installed) else osp.join(osp.dirname(package), 'configs')


def get_tiny_model_cfg(with_loc: bool = False) -> ConfigDict:
    """The demo's model (``configs/_base_/models/foundation_x_tiny.py``) at unit-test
    size: 64 px images, batch 2 on a CPU.

    The demo's modules and losses with smaller widths: Swin ``embed_dims=32``, depths
    (2, 2, 2, 2) (so shifted windows run), window 4 with small-map padding (stage 4 is 2x2
    at 64 px); UperNet with 16 channels; with ``with_loc`` a SharedDINO on stages 2-4 (64,
    128, 256 channels) with a one-layer encoder, a two-layer decoder, 4 sampling points, 30
    queries and 10 boxes per image. Datasets: ``nih`` (cls, 3 classes), ``siim`` (cls 1,
    seg 1; with ``with_loc`` also loc 1) and ``jsrt`` (seg 3); with ``with_loc`` also ``tbx``
    (loc 2), so that the loc path has two datasets.

    Args:
        with_loc (bool): Give the model its loc path. Defaults to False (cls and seg only).

    Returns:
        ConfigDict: A fresh ``FoundationX`` config.
    """
    cfg = Config.fromfile(osp.join(_config_dir(), '_base_', 'models',
                                   'foundation_x_tiny.py')).model
    channels = [32, 64, 128, 256]
    cfg.datasets = dict(
        nih=dict(cls_classes=['Atelectasis', 'Cardiomegaly', 'Effusion']),
        siim=dict(cls_classes=['Pneumothorax'], seg_classes=['Pneumothorax']),
        jsrt=dict(seg_classes=['heart', 'left lung', 'right lung']))
    cfg.backbone.update(arch=dict(embed_dims=channels[0], depths=[2, 2, 2, 2],
                                  num_heads=[1, 2, 4, 8]),
                        img_size=64, drop_path_rate=0.)
    cfg.cls_head.in_channels = channels[-1]
    cfg.seg_neck.update(in_channels=channels, channels=16)
    cfg.seg_head.in_channels = 16
    if not with_loc:
        del cfg.loc_head
        return cfg
    cfg.datasets.siim.det_classes = ['Pneumothorax']
    cfg.datasets.tbx = dict(det_classes=['ActiveTuberculosis', 'ObsoleteTuberculosis'])
    loc = cfg.loc_head
    loc.in_channels = channels[1:]
    loc.encoder.num_layers = 1
    for layer in (loc.encoder.layer_cfg, loc.decoder.layer_cfg):
        layer.ffn_cfg.feedforward_channels = 256
    loc.encoder.layer_cfg.self_attn_cfg.num_points = 4
    loc.decoder.layer_cfg.cross_attn_cfg.num_points = 4
    loc.test_cfg.max_per_img = 10
    return cfg
