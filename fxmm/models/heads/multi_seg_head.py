"""One multi-label mask classifier per dataset on the shared seg decoder's feature."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.structures import PixelData
from torch import Tensor

from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import CXRDataSample
from .prior_init import PriorProb, check_prior_prob, init_prior_classifiers


@MODELS.register_module()
class MultiDatasetSegHead(BaseModule):
    """Per-dataset segmentation heads of Foundation X.

    For each dataset: ``[3x3 ConvModule(in, mid) ->] conv(., K)`` (1x1, or ``kernel_size``:
    the authors' released heads are 3x3) on the shared stride-4 feature, then bilinear
    upsampling to the batch input size. The K masks of a dataset are
    multi-label (they may overlap), so every logit gets its own sigmoid.

    Losses are computed at input resolution, on each image's own area (``img_shape``, the
    padding of the batch cropped away), and averaged over the images.

    Args:
        in_channels (int): Channels of the shared feature (the seg neck's ``channels``).
        dataset_classes (dict[str, int]): Dataset name -> number of masks K (one head each).
            ``FoundationX`` fills it from its ``datasets`` argument.
        mid_channels (int, optional): Channels of the 3x3 conv+norm+act before the 1x1
            classifier; None for the 1x1 classifier alone. Defaults to None.
        kernel_size (int): Kernel of the classifier conv (odd; same padding). Defaults to 1.
        norm_cfg (dict): Norm of the 3x3 conv. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation of the 3x3 conv. Defaults to ``dict(type='ReLU')``.
        loss_decode (dict | Sequence[dict]): Loss config(s), each called as
            ``loss(logits (N, K, H, W), masks (N, K, H, W))`` and keyed by its ``loss_name``
            (mmseg's convention). Defaults to ``dict(type='MultiLabelDiceLoss')``, the
            authors' loss; add ``dict(type='MaskedBCEWithLogitsLoss', loss_weight=...)`` for
            Dice + BCE.
        threshold (float): Probability above which a pixel is predicted in a mask.
            Defaults to 0.5.
        align_corners (bool): ``align_corners`` of the bilinear resizing. Defaults to False.
        prior_prob (float | dict[str, float], optional): Start every pixel's mask
            probabilities at this value (one for all datasets, or per dataset name, e.g.
            the share of pixels in the masks): :meth:`init_weights` gives each dataset's
            classifier conv Normal(0, 0.01) weights and the bias ``log(p / (1 - p))``,
            RetinaNet's initialisation, so that a head of small masks need not first move
            its bias there. None keeps PyTorch's default initialisation. Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 dataset_classes: Dict[str, int],
                 mid_channels: Optional[int] = None,
                 kernel_size: int = 1,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 loss_decode: Union[dict, Sequence[dict]] = dict(type='MultiLabelDiceLoss'),
                 threshold: float = 0.5,
                 align_corners: bool = False,
                 prior_prob: PriorProb = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if not dataset_classes:
            raise ValueError('MultiDatasetSegHead: dataset_classes is empty; give '
                             '{dataset name: number of masks}')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'MultiDatasetSegHead: kernel_size must be odd and >= 1, got '
                             f'{kernel_size}')
        self.in_channels = in_channels
        self.dataset_classes = dict(dataset_classes)
        self.threshold = threshold
        self.align_corners = align_corners
        self.heads = nn.ModuleDict()
        for name, n in self.dataset_classes.items():
            layers = []
            if mid_channels is not None:
                layers.append(ConvModule(in_channels, mid_channels, 3, padding=1,
                                         norm_cfg=norm_cfg, act_cfg=act_cfg))
            layers.append(nn.Conv2d(mid_channels or in_channels, n, kernel_size,
                                    padding=kernel_size // 2))
            self.heads[name] = nn.Sequential(*layers)
        loss_cfgs = [loss_decode] if isinstance(loss_decode, dict) else list(loss_decode)
        self.loss_decode = nn.ModuleList(MODELS.build(cfg) for cfg in loss_cfgs)
        self.priors = check_prior_prob(prior_prob, self.dataset_classes, type(self).__name__)

    def init_weights(self) -> None:
        """``init_cfg``'s initialisation, then the ``prior_prob`` classifiers' (if any)."""
        super().init_weights()
        init_prior_classifiers({name: head[-1] for name, head in self.heads.items()},
                               self.priors)

    def forward(self, x: Tensor, dataset: str, size: Tuple[int, int]) -> Tensor:
        """Mask logits of ``dataset`` at ``size``.

        Args:
            x (Tensor): Shared feature, shape (B, in_channels, H/4, W/4).
            dataset (str): Name of the dataset whose head runs.
            size (tuple[int, int]): Output (H, W), the batch input size.

        Returns:
            Tensor: Logits, shape (B, K, H, W).
        """
        logits = self.heads[dataset](x)
        return F.interpolate(logits, size=tuple(size), mode='bilinear',
                             align_corners=self.align_corners)

    def loss(self, x: Tensor, data_samples: List[CXRDataSample], dataset: str) -> dict:
        """Losses of ``dataset``'s masks against ``gt_seg_masks.data``.

        Args:
            x (Tensor): Shared feature, shape (B, in_channels, H/4, W/4).
            data_samples (list[CXRDataSample]): B samples with ``gt_seg_masks.data``
                (K, h, w) binary, h x w the image's area in the batch input (top-left), and
                metainfo ``batch_input_shape`` (H, W).
            dataset (str): Name of the batch's dataset.

        Returns:
            dict[str, Tensor]: One scalar per loss, keyed by the losses' ``loss_name``.
        """
        logits = self(x, dataset, data_samples[0].batch_input_shape)
        targets = [sample.gt_seg_masks.data for sample in data_samples]
        for i, target in enumerate(targets):
            if target.shape[0] != logits.shape[1] or any(
                    t > s for t, s in zip(target.shape[-2:], logits.shape[-2:])):
                raise ValueError(
                    f'dataset {dataset!r}, data_samples[{i}]: gt_seg_masks of shape '
                    f'{tuple(target.shape)} does not fit {logits.shape[1]} seg classes within '
                    f'the batch input {tuple(logits.shape[-2:])} (check seg_classes)')
        losses = {}
        for loss_fn in self.loss_decode:
            # the mean over images of each image's loss on its own (unpadded) area
            per_image = [
                loss_fn(logit[None, :, :target.shape[-2], :target.shape[-1]],
                        target[None].to(logit))
                for logit, target in zip(logits, targets)
            ]
            losses[loss_fn.loss_name] = torch.stack(per_image).mean()
        return losses

    def predict(self, x: Tensor, data_samples: List[CXRDataSample],
                dataset: str) -> List[PixelData]:
        """Masks of ``dataset`` at each image's original size.

        The logits are upsampled to the batch input, cropped to the image's ``img_shape``
        (dropping the batch padding), resized to ``ori_shape`` (undoing the pipeline's resize)
        and passed through a sigmoid.

        Args:
            x (Tensor): Shared feature, shape (B, in_channels, H/4, W/4).
            data_samples (list[CXRDataSample]): B samples with metainfo ``batch_input_shape``,
                ``img_shape`` and ``ori_shape``.
            dataset (str): Name of the dataset whose head runs.

        Returns:
            list[PixelData]: Per image, ``score`` float (K, H_ori, W_ori) probabilities and
            ``data`` bool (K, H_ori, W_ori), ``score > threshold``.
        """
        logits = self(x, dataset, data_samples[0].batch_input_shape)
        results = []
        for logit, sample in zip(logits, data_samples):
            h, w = sample.img_shape[:2]
            logit = F.interpolate(logit[None, :, :h, :w], size=tuple(sample.ori_shape[:2]),
                                  mode='bilinear', align_corners=self.align_corners)[0]
            score = logit.sigmoid()
            results.append(PixelData(data=score > self.threshold, score=score))
        return results
