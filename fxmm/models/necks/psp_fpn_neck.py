"""The segmentation decoder of the authors' Foundation X: a PSP module on the last stage and a
non-cascaded FPN fused into one stride-4 map."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmseg.models.decode_heads.psp_head import PPM
from torch import Tensor, nn

from fxmm.registry import MODELS


@MODELS.register_module()
class PSPFPNNeck(BaseModule):
    """The authors' shared segmentation decoder (jlianglab/Foundation_X, the
    ``segmentation_PPN`` / ``segmentation_FPN`` of their Swin), shared by every seg dataset.

    With stage outputs ``c_0 .. c_3`` (strides 4..32; ``in_channels[0] == channels``)::

        c_3' = bottleneck(cat(c_3, PPM(c_3)))        # PSP, bins pool_scales, 3x3 conv back
                                                      # to in_channels[-1] (full width)
        l_0 = c_0,  l_i = lateral_convs[i-1](c_i)     # 1x1 convs with bias, no norm (i >= 1;
                                                      # l_3 from c_3')
        p_i = smooth_conv(up(l_{i+1}) + l_i)          # i = 0, 1, 2: NOT cascaded (each adds
                                                      # the lateral above, not p_{i+1}); one
                                                      # 3x3 conv shared by the three levels
        out = fusion(cat(p_0, up(p_1), up(p_2), up(l_3)))   # 3x3 conv + BN + ReLU, stride 4

    every ``up`` a bilinear resize to the finer map with ``align_corners``. Unlike mmseg's
    UPerHead (fxmm's :class:`SharedUperNet`), the top-down path is not cascaded, the laterals
    and smoothing have no norm, and the PSP output keeps the full width. The PSP branches
    are mmseg's :class:`~mmseg.models.decode_heads.psp_head.PPM`.

    Args:
        in_channels (Sequence[int]): Channels of the 4 backbone stages (128/256/512/1024 for
            Swin-B).
        channels (int): Width of the FPN and of the output; must equal ``in_channels[0]``
            (stage 1 joins without a lateral conv). Defaults to 128.
        pool_scales (Sequence[int]): Output sizes of the pyramid pooling. Defaults to
            (1, 2, 4, 6).
        psp_channels (int, optional): Channels of each PSP branch; None for
            ``in_channels[-1] // len(pool_scales)`` (the authors'). Defaults to None.
        norm_cfg (dict): Norm of the PSP convs, the bottleneck and the fusion conv. BN needs
            batches of more than one image in training (the 1x1 pooling). Defaults to
            ``dict(type='BN')``.
        act_cfg (dict): Their activation. Defaults to ``dict(type='ReLU')``.
        dropout_ratio (float): ``Dropout2d`` after the bottleneck. Defaults to 0.1.
        align_corners (bool): ``align_corners`` of every resize. Defaults to True.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 128,
                 pool_scales: Sequence[int] = (1, 2, 4, 6),
                 psp_channels: Optional[int] = None,
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 dropout_ratio: float = 0.1,
                 align_corners: bool = True,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if len(in_channels) < 2 or in_channels[0] != channels:
            raise ValueError(f'PSPFPNNeck: needs 2 or more stages with in_channels[0] == '
                             f'channels (the first stage has no lateral conv); got in_channels '
                             f'{tuple(in_channels)}, channels {channels}')
        self.in_channels = tuple(in_channels)
        self.channels = channels
        self.align_corners = align_corners
        top = in_channels[-1]
        psp_channels = psp_channels or top // len(pool_scales)
        self.psp = PPM(tuple(pool_scales), top, psp_channels, conv_cfg=None, norm_cfg=norm_cfg,
                       act_cfg=act_cfg, align_corners=align_corners)
        self.bottleneck = ConvModule(top + len(pool_scales) * psp_channels, top, 3, padding=1,
                                     norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.dropout = nn.Dropout2d(dropout_ratio)
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels[1:])
        self.smooth_conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.fusion = ConvModule(len(in_channels) * channels, channels, 3, padding=1,
                                 norm_cfg=norm_cfg, act_cfg=act_cfg)

    def _up(self, x: Tensor, like: Tensor) -> Tensor:
        return F.interpolate(x, size=like.shape[2:], mode='bilinear',
                             align_corners=self.align_corners)

    def forward(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Fuse the backbone stages.

        Args:
            feats (tuple[Tensor]): Stage outputs, shapes (B, in_channels[i], H_i, W_i),
                strides 4, 8, 16, 32.

        Returns:
            Tensor: Shape (B, channels, H_0, W_0) (stride 4).
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(f'PSPFPNNeck expects {len(self.in_channels)} feature maps '
                             f'(in_channels={self.in_channels}), got {len(feats)}')
        top = feats[-1]
        top = self.dropout(self.bottleneck(torch.cat([top, *self.psp(top)], dim=1)))
        laterals = [feats[0]] + [conv(x) for conv, x in
                                 zip(self.lateral_convs, [*feats[1:-1], top])]
        levels = [self.smooth_conv(self._up(upper, lower) + lower)
                  for lower, upper in zip(laterals[:-1], laterals[1:])]
        levels.append(laterals[-1])
        return self.fusion(torch.cat([levels[0]] + [self._up(x, levels[0]) for x in levels[1:]],
                                     dim=1))
