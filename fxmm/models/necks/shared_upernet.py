"""The UperNet decoder shared by every segmentation dataset of Foundation X."""
from typing import Optional, Sequence, Tuple

from mmengine.model import BaseModule
from mmseg.models.decode_heads import UPerHead
from torch import Tensor

from fxmm.registry import MODELS


@MODELS.register_module()
class SharedUperNet(BaseModule):
    """UperNet (PSP module on the last stage + FPN) fusing 4 stages into one stride-4 map.

    This is mmseg's :class:`~mmseg.models.decode_heads.UPerHead` without its classifier:
    the pixel classifiers are per dataset (:class:`MultiDatasetSegHead`), the decoder is
    shared. ``forward`` returns ``UPerHead._forward_feature``, i.e. the ``fpn_bottleneck``
    output before ``cls_seg``; ``conv_seg`` and ``loss_decode`` are removed so that nothing
    unused holds parameters. See `UperNet <https://arxiv.org/abs/1807.10221>`_.

    Args:
        in_channels (Sequence[int]): Channels of the backbone stages, strides 4/8/16/32
            (128/256/512/1024 for Swin-B).
        channels (int): Channels of the decoder and of its output (128 in Foundation X at
            224 px). Defaults to 128.
        pool_scales (Sequence[int]): Output sizes of the pyramid pooling on the last stage.
            Defaults to (1, 2, 3, 6).
        norm_cfg (dict): Norm layer of the decoder convs. BN needs batches of more than one
            image in training (the PSP 1x1 pooling). Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation layer. Defaults to ``dict(type='ReLU')``.
        align_corners (bool): ``align_corners`` of the bilinear upsampling. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 channels: int = 128,
                 pool_scales: Sequence[int] = (1, 2, 3, 6),
                 norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 align_corners: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.in_channels = tuple(in_channels)
        self.channels = channels
        # Built in mmseg's scope (`_scope_`), where its default loss config resolves, whatever
        # the current default scope. num_classes/out_channels/threshold only satisfy
        # BaseDecodeHead's checks: the classifier they size (conv_seg) is deleted below.
        self.uper: UPerHead = MODELS.build(dict(
            type='UPerHead',
            _scope_='mmseg',
            in_channels=list(in_channels),
            in_index=list(range(len(in_channels))),
            channels=channels,
            pool_scales=tuple(pool_scales),
            num_classes=1,
            out_channels=1,
            threshold=0.5,
            dropout_ratio=0.,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            align_corners=align_corners,
            init_cfg=None))
        del self.uper.conv_seg, self.uper.loss_decode

    def forward(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Fuse the backbone stages.

        Args:
            feats (tuple[Tensor]): Stage outputs, shapes (B, in_channels[i], H_i, W_i) with
                strides 4, 8, 16, 32.

        Returns:
            Tensor: Fused feature, shape (B, channels, H_0, W_0) (stride 4).
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(f'SharedUperNet expects {len(self.in_channels)} feature maps '
                             f'(in_channels={self.in_channels}), got {len(feats)}')
        return self.uper._forward_feature(list(feats))
