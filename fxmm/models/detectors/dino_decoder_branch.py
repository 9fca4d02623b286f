"""One dataset's part of :class:`~fxmm.models.detectors.SharedDINO`: DINO query selection,
de-noising queries, decoder and box head.

The forward code is mmdet's own: :class:`DINODecoderBranch` holds the modules under the
attribute names mmdet's ``DINO`` uses (``decoder``, ``query_embedding``, ``memory_trans_fc``,
``memory_trans_norm``, ``dn_query_generator``, ``bbox_head``, ``num_queries``) and runs
``DINO.pre_decoder`` and ``DeformableDETR.gen_encoder_output_proposals`` on them; its
:meth:`~DINODecoderBranch.forward_decoder` is ``DINO.forward_decoder`` with the refinement
branches as an option. The shared encoder side lives in
:class:`~fxmm.models.detectors.SharedDINO`.
"""
import copy
from typing import List, Optional, Sequence

import torch
from mmcv.cnn.bricks.transformer import MultiScaleDeformableAttention
from mmdet.models.detectors import DINO, DeformableDETR
from mmdet.models.layers import CdnQueryGenerator, DinoTransformerDecoder
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from fxmm.registry import MODELS


@MODELS.register_module()
class DINODecoderBranch(BaseModule):
    """The per-dataset modules of a DINO detector (everything after the encoder).

    As in DINO-4scale with ``as_two_stage`` and ``with_box_refine``, the head has
    ``num_layers + 1`` unshared class/box branches: branch ``i < num_layers`` predicts from
    decoder layer ``i`` (and, unless ``separate_box_refine``, its box branch refines that
    layer's reference boxes inside the decoder), branch ``num_layers`` scores the encoder
    tokens for the two-stage query selection (``enc_loss_*``). Every parameter takes part in
    :meth:`loss` when the batch holds boxes: the encoder-side branch through ``enc_loss_*``,
    the label embedding of the de-noising queries through ``dn_loss_*``.

    ``memory_trans_fc``/``memory_trans_norm`` (the projection of encoder memory before the
    two-stage scoring) belong to the branch, not to the shared encoder: their only consumer is
    this dataset's encoder-side class/box branch, whose label space is the dataset's own, and
    keeping them here lets a dataset's query selection adapt while the shared encoder is
    locked (Lock-Release).

    The options below (all off by default: mmdet's DINO) give the DINO of the authors'
    released Foundation X (jlianglab/Foundation_X ``dino_F6.py`` /
    ``deformable_transformer_F6.py``, one decoder per dataset):

    - ``memory_proj``: a Linear on the encoder memory, ahead of everything of the branch: the
      two-stage proposals and scoring and the decoder's cross-attention values both see the
      projected memory (their ``enc_outputMem_LinearProjection``);
    - ``separate_box_refine``: the decoder refines its reference boxes with one box MLP of
      the branch, ``refine_branch``, shared by its layers (their ``bbox_embed``: one module
      under the 6 layers' names), and ``bbox_head.reg_branches`` only predict the output boxes
      (their ``bbox_embed_``). In training the refinement learns through the next layers'
      output boxes, whose references it made (the last layer's refined boxes feed nothing:
      one shared MLP, unlike one per layer, leaves no parameter without a gradient);
    - ``num_class_rows`` / ``first_class_row``: class layers of ``num_class_rows`` outputs,
      dataset class ``i`` being row ``first_class_row + i`` (theirs: 14 rows indexed by COCO
      category id, ids from 1). All rows score the two-stage selection and all rows are
      trained (the rows of no class as negatives, as theirs); predictions keep the dataset's
      rows only and label them ``0 .. num_classes - 1``;
    - ``num_label_rows``: rows of the de-noising label embedding (theirs: 16); noisy labels are
      still drawn from the ``num_class_rows`` class rows;
    - ``ref_eps``: the head clamps reference boxes to ``[ref_eps, 1 - ref_eps]`` before their
      inverse sigmoid (theirs 1e-3, as the decoder's refinement; mmdet's head 1e-5).

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
        memory_proj (bool): project the encoder memory first. Defaults to False.
        separate_box_refine (bool): refine reference boxes with ``refine_branch``, not with
            the head's box branches. Defaults to False.
        num_class_rows (int, optional): outputs of the class layers; None: ``num_classes``.
        first_class_row (int): the row of class 0. Defaults to 0.
        num_label_rows (int, optional): rows of the de-noising label embedding; None:
            ``num_class_rows``.
        ref_eps (float, optional): the head's clamp of the reference boxes; None: mmdet's.
        init_cfg (dict, optional): initialisation config. Defaults to None.
    """

    # mmdet's DINO forward code, run on this module's attributes.
    gen_encoder_output_proposals = DeformableDETR.gen_encoder_output_proposals
    pre_decoder = DINO.pre_decoder

    def __init__(self,
                 num_classes: int,
                 embed_dims: int,
                 num_queries: int,
                 decoder: ConfigType,
                 dn_cfg: ConfigType,
                 bbox_head: ConfigType,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 memory_proj: bool = False,
                 separate_box_refine: bool = False,
                 num_class_rows: Optional[int] = None,
                 first_class_row: int = 0,
                 num_label_rows: Optional[int] = None,
                 ref_eps: Optional[float] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.embed_dims = embed_dims
        self.num_queries = num_queries
        self.num_class_rows = num_classes if num_class_rows is None else num_class_rows
        self.first_class_row = first_class_row
        if first_class_row < 0 or first_class_row + num_classes > self.num_class_rows:
            raise ValueError(f'classes 0..{num_classes - 1} at rows from first_class_row '
                             f'{first_class_row} do not fit num_class_rows '
                             f'{self.num_class_rows}')
        num_label_rows = self.num_class_rows if num_label_rows is None else num_label_rows
        if num_label_rows < self.num_class_rows:
            raise ValueError(f'num_label_rows ({num_label_rows}) must be >= num_class_rows '
                             f'({self.num_class_rows}): noisy de-noising labels are class rows')
        if ref_eps is not None and not 1e-5 <= ref_eps < 0.5:
            raise ValueError(f'ref_eps must be in [1e-5, 0.5) (mmdet clamps at 1e-5 itself), '
                             f'got {ref_eps}')
        self.ref_eps = ref_eps

        self.decoder = DinoTransformerDecoder(**copy.deepcopy(decoder))
        self.query_embedding = nn.Embedding(num_queries, embed_dims)
        self.memory_proj = nn.Linear(embed_dims, embed_dims) if memory_proj else None
        self.memory_trans_fc = nn.Linear(embed_dims, embed_dims)
        self.memory_trans_norm = nn.LayerNorm(embed_dims)

        dn_cfg = copy.deepcopy(dn_cfg)
        for key in ('num_classes', 'embed_dims', 'num_matching_queries'):
            if key in dn_cfg:
                raise ValueError(f'dn_cfg must not set {key!r}; it is derived from the dataset '
                                 'and the detector')
        self.dn_query_generator = CdnQueryGenerator(
            num_classes=self.num_class_rows, embed_dims=embed_dims,
            num_matching_queries=num_queries, **dn_cfg)
        if num_label_rows != self.num_class_rows:
            # CdnQueryGenerator draws noisy labels from its num_classes; only its table grows
            self.dn_query_generator.label_embedding = nn.Embedding(num_label_rows, embed_dims)

        bbox_head = copy.deepcopy(bbox_head)
        for key in ('num_classes', 'share_pred_layer', 'num_pred_layer', 'as_two_stage'):
            if key in bbox_head:
                raise ValueError(f'bbox_head must not set {key!r}; it is derived from the '
                                 'dataset and the detector')
        # unshared branches (with_box_refine); one more for the encoder side (as_two_stage)
        bbox_head.update(
            num_classes=self.num_class_rows, embed_dims=embed_dims, share_pred_layer=False,
            num_pred_layer=self.decoder.num_layers + 1, as_two_stage=True,
            train_cfg=copy.deepcopy(train_cfg), test_cfg=copy.deepcopy(test_cfg))
        self.bbox_head = MODELS.build(bbox_head)
        # the head's box branch structure (mmdet's Sequential(Linear, ReLU, ..., Linear))
        self.refine_branch = (copy.deepcopy(self.bbox_head.reg_branches[0])
                              if separate_box_refine else None)

    @property
    def box_refine_branches(self) -> Sequence[nn.Module]:
        """The box branch of each decoder layer that refines its reference boxes."""
        if self.refine_branch is not None:
            return [self.refine_branch] * self.decoder.num_layers
        return self.bbox_head.reg_branches

    @property
    def remaps_rows(self) -> bool:
        """bool: whether class rows differ from the dataset's class indices."""
        return self.first_class_row != 0 or self.num_class_rows != self.num_classes

    def init_weights(self) -> None:
        """Initialise as mmdet's ``DINO.init_weights`` does for the decoder side.

        The head's own ``init_weights`` (prior-probability class bias, zero last box layer)
        runs first; then Xavier for the decoder's matrices, the deformable attentions' sampling
        grid, and Xavier for the memory projections and the query embedding; the refinement
        branch starts from a zero last layer (no refinement), as the head's box branches.
        """
        super().init_weights()
        for p in self.decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.decoder.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.xavier_uniform_(self.memory_trans_fc.weight)
        if self.memory_proj is not None:
            nn.init.xavier_uniform_(self.memory_proj.weight)
        nn.init.xavier_uniform_(self.query_embedding.weight)
        if self.refine_branch is not None:
            nn.init.zeros_(self.refine_branch[-1].weight)
            nn.init.zeros_(self.refine_branch[-1].bias)

    def project_memory(self, memory: Tensor) -> Tensor:
        """The encoder memory (B, N_tokens, C) as this branch sees it (``memory_proj``)."""
        return memory if self.memory_proj is None else self.memory_proj(memory)

    def forward_decoder(self, query: Tensor, memory: Tensor, memory_mask: Optional[Tensor],
                        reference_points: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor,
                        dn_mask: Optional[Tensor] = None, **kwargs) -> dict:
        """mmdet's ``DINO.forward_decoder``, refining with :attr:`box_refine_branches`.

        Args:
            query (Tensor): content queries (B, Q_total, C).
            memory (Tensor): encoder memory (B, N_tokens, C), after :meth:`project_memory`.
            memory_mask (Tensor, optional): padding mask (B, N_tokens) or None.
            reference_points (Tensor): initial boxes (B, Q_total, 4), normalised cxcywh.
            spatial_shapes, level_start_index, valid_ratios (Tensor): the levels' layout.
            dn_mask (Tensor, optional): self-attention mask of the de-noising queries.

        Returns:
            dict: ``hidden_states`` (num_layers, B, Q_total, C), ``references`` (list of
            num_layers + 1 tensors (B, Q_total, 4): the initial boxes, then each layer's
            refined boxes).
        """
        hidden_states, references = self.decoder(
            query=query, value=memory, key_padding_mask=memory_mask, self_attn_mask=dn_mask,
            reference_points=reference_points, spatial_shapes=spatial_shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios,
            reg_branches=self.box_refine_branches, **kwargs)
        return dict(hidden_states=hidden_states, references=list(references))

    def head_references(self, references: List[Tensor]) -> List[Tensor]:
        """The reference boxes as the head takes them (clamped by ``ref_eps``)."""
        if self.ref_eps is None:
            return references
        return [ref.clamp(self.ref_eps, 1 - self.ref_eps) for ref in references]

    def head_outputs(self, hidden_states: Tensor, references: List[Tensor]):
        """Class logits (num_layers, B, Q, num_class_rows) and boxes (num_layers, B, Q, 4),
        normalised cxcywh, of every decoder layer (``bbox_head`` forward)."""
        return self.bbox_head(hidden_states, self.head_references(references))

    def with_row_labels(self, batch_data_samples: SampleList) -> SampleList:
        """The data samples with ``gt_instances.labels`` as class rows (the same samples when
        rows are the class indices)."""
        if self.first_class_row == 0:
            return batch_data_samples
        out = []
        for sample in batch_data_samples:
            gt = sample.gt_instances
            out.append(sample.new(gt_instances=gt.new(
                bboxes=gt.bboxes, labels=gt.labels + self.first_class_row)))
        return out

    def loss(self, head_inputs: dict, batch_data_samples: SampleList) -> dict:
        """``bbox_head.loss`` on :meth:`forward_decoder`'s and ``pre_decoder``'s outputs.

        Args:
            head_inputs (dict): ``hidden_states``, ``references``, ``enc_outputs_class``,
                ``enc_outputs_coord``, ``dn_meta``.
            batch_data_samples (list[DetDataSample]): labels as rows
                (:meth:`with_row_labels`).
        """
        head_inputs = dict(head_inputs, references=self.head_references(head_inputs['references']))
        return self.bbox_head.loss(**head_inputs, batch_data_samples=batch_data_samples)

    def predict(self, hidden_states: Tensor, references: List[Tensor],
                batch_data_samples: SampleList, rescale: bool = True) -> InstanceList:
        """The boxes of the last decoder layer (``bbox_head.predict``), top-k over the
        dataset's class rows only, labelled ``0 .. num_classes - 1``.

        Args:
            hidden_states (Tensor): (num_layers, B, num_queries, C), matching queries.
            references (list[Tensor]): num_layers + 1 tensors (B, num_queries, 4).
            batch_data_samples (list[DetDataSample]): metainfo ``img_shape`` and, when
                ``rescale``, ``scale_factor``.
            rescale (bool): boxes in the original image. Defaults to True.
        """
        references = self.head_references(references)
        if not self.remaps_rows:
            return self.bbox_head.predict(hidden_states, references,
                                          batch_data_samples=batch_data_samples, rescale=rescale)
        cls_scores, bbox_preds = self.bbox_head(hidden_states, references)
        rows = slice(self.first_class_row, self.first_class_row + self.num_classes)
        dataset_scores = torch.full_like(cls_scores, float('-inf'))
        dataset_scores[..., rows] = cls_scores[..., rows]
        results = self.bbox_head.predict_by_feat(
            dataset_scores, bbox_preds, batch_img_metas=[s.metainfo for s in batch_data_samples],
            rescale=rescale)
        for result in results:
            result.labels = result.labels - self.first_class_row
        return results
