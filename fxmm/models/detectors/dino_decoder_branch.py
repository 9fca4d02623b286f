"""One dataset's part of :class:`~fxmm.models.detectors.SharedDINO`: DINO query selection,
de-noising queries, decoder and box head.

The forward code is mmdet's own: :class:`DINODecoderBranch` holds the modules under the
attribute names mmdet's ``DINO`` uses (``decoder``, ``query_embedding``, ``memory_trans_fc``,
``memory_trans_norm``, ``dn_query_generator``, ``bbox_head``, ``num_queries``) and runs
``DINO.pre_decoder``, ``DINO.forward_decoder`` and
``DeformableDETR.gen_encoder_output_proposals`` on them. The shared encoder side lives in
:class:`~fxmm.models.detectors.SharedDINO`.
"""
import copy

from mmcv.cnn.bricks.transformer import MultiScaleDeformableAttention
from mmdet.models.detectors import DINO, DeformableDETR
from mmdet.models.layers import CdnQueryGenerator, DinoTransformerDecoder
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import nn

from fxmm.registry import MODELS


@MODELS.register_module()
class DINODecoderBranch(BaseModule):
    """The per-dataset modules of a DINO detector (everything after the encoder).

    As in DINO-4scale with ``as_two_stage`` and ``with_box_refine``, the head has
    ``num_layers + 1`` unshared class/box branches: branch ``i < num_layers`` predicts from
    decoder layer ``i`` (and its box branch refines that layer's reference boxes inside the
    decoder), branch ``num_layers`` scores the encoder tokens for the two-stage query selection
    (``enc_loss_*``). Every parameter takes part in :meth:`bbox_head.loss` when the batch holds
    boxes: the encoder-side branch through ``enc_loss_*``, the label embedding of the
    de-noising queries through ``dn_loss_*``.

    ``memory_trans_fc``/``memory_trans_norm`` (the projection of encoder memory before the
    two-stage scoring) belong to the branch, not to the shared encoder: their only consumer is
    this dataset's encoder-side class/box branch, whose label space is the dataset's own, and
    keeping them here lets a dataset's query selection adapt while the shared encoder is
    locked (Lock-Release).

    Args:
        num_classes (int): number of box classes of the dataset.
        embed_dims (int): feature width of the transformer, 256 for DINO.
        num_queries (int): number of matching queries (anchors selected from the encoder).
        decoder (dict): ``DinoTransformerDecoder`` config (``num_layers``, ``layer_cfg``,
            ``return_intermediate=True``, ``post_norm_cfg=None``).
        dn_cfg (dict): ``CdnQueryGenerator`` config without ``num_classes``, ``embed_dims``
            and ``num_matching_queries`` (set here).
        bbox_head (dict): ``mmdet.DINOHead`` config without ``num_classes``,
            ``share_pred_layer``, ``num_pred_layer`` and ``as_two_stage`` (set here).
        train_cfg (dict, optional): head training config (the Hungarian assigner).
        test_cfg (dict, optional): head test config (``max_per_img``).
        init_cfg (dict, optional): initialisation config. Defaults to None.
    """

    # mmdet's DINO forward code, run on this module's attributes.
    gen_encoder_output_proposals = DeformableDETR.gen_encoder_output_proposals
    pre_decoder = DINO.pre_decoder
    forward_decoder = DINO.forward_decoder

    def __init__(self,
                 num_classes: int,
                 embed_dims: int,
                 num_queries: int,
                 decoder: ConfigType,
                 dn_cfg: ConfigType,
                 bbox_head: ConfigType,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.num_queries = num_queries

        self.decoder = DinoTransformerDecoder(**copy.deepcopy(decoder))
        self.query_embedding = nn.Embedding(num_queries, embed_dims)
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)

        dn_cfg = copy.deepcopy(dn_cfg)
        for key in ('num_classes', 'embed_dims', 'num_matching_queries'):
            if key in dn_cfg:
                raise ValueError(f'dn_cfg must not set {key!r}; it is derived from the dataset '
                                 'and the detector')
        self.dn_query_generator = CdnQueryGenerator(
            num_classes=num_classes, embed_dims=embed_dims, num_matching_queries=num_queries,
            **dn_cfg)

        bbox_head = copy.deepcopy(bbox_head)
        for key in ('num_classes', 'share_pred_layer', 'num_pred_layer', 'as_two_stage'):
            if key in bbox_head:
                raise ValueError(f'bbox_head must not set {key!r}; it is derived from the '
                                 'dataset and the detector')
        # unshared branches (with_box_refine); one more for the encoder side (as_two_stage)
        bbox_head.update(
            num_classes=num_classes, embed_dims=embed_dims, share_pred_layer=False,
            num_pred_layer=self.decoder.num_layers + 1, as_two_stage=True,
            train_cfg=copy.deepcopy(train_cfg), test_cfg=copy.deepcopy(test_cfg))
        self.bbox_head = MODELS.build(bbox_head)

    def init_weights(self) -> None:
        """Initialise as mmdet's ``DINO.init_weights`` does for the decoder side.

        The head's own ``init_weights`` (prior-probability class bias, zero last box layer)
        runs first; then Xavier for the decoder's matrices, the deformable attentions' sampling
        grid, and Xavier for the memory projection and the query embedding.
        """
        super().init_weights()
        for p in self.decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.decoder.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.xavier_uniform_(self.memory_trans_fc.weight)
        nn.init.xavier_uniform_(self.query_embedding.weight)
