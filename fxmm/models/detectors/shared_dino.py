"""Foundation X localisation: one DINO encoder shared by all datasets, one decoder per dataset."""
import copy
from typing import Dict, List, Sequence, Tuple

import torch
from mmcv.cnn.bricks.transformer import MultiScaleDeformableAttention
from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers import DeformableDetrTransformerEncoder, SinePositionalEncoding
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.model import BaseModule, ModuleDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from fxmm.registry import MODELS
from fxmm.utils.mmcv_compat import allow_bfloat16_deformable_attention
from .dino_decoder_branch import DINODecoderBranch
from .dino_defaults import (DINO_DECODER, DINO_DN_CFG, DINO_ENCODER, DINO_HEAD, DINO_NECK,
                            DINO_POSITIONAL_ENCODING, DINO_TEST_CFG, DINO_TRAIN_CFG)

# mmcv's CUDA deformable attention has no bfloat16 kernel: run it in float32 under bf16 AMP
allow_bfloat16_deformable_attention()


def _fill_cfg(cfg: dict, where: str, **values) -> None:
    """Set ``values`` in a sub-module config, refusing a conflicting user value."""
    for key, value in values.items():
        if cfg.setdefault(key, value) != value:
            raise ValueError(f'{where}.{key} is {cfg[key]}, but the detector needs {value}')


@MODELS.register_module()
class SharedDINO(BaseModule):
    """DINO for many datasets: shared input projection and encoder, per-dataset decoders.

    Foundation X (Islam et al., WACV 2025, https://arxiv.org/abs/2503.09860) localises with
    DINO (Zhang et al., https://arxiv.org/abs/2203.03605) built from mmdet's parts:

    - shared, one copy: the input projection ``neck`` (``mmdet.ChannelMapper``: 1x1 conv +
      GroupNorm(32) per selected backbone stage, plus a stride-2 3x3 conv on the last one for
      the extra level), the sine positional encoding, ``level_embed`` and the deformable
      ``encoder``;
    - per dataset, ``branches[dataset]`` (:class:`DINODecoderBranch`): memory projection and
      two-stage query selection, ``query_embedding``, contrastive de-noising query generator,
      decoder and ``mmdet.DINOHead`` with the dataset's classes; ``branch_cfg`` switches on
      the options of the authors' released DINO (:class:`DINODecoderBranch`).

    The forward code is mmdet's (``DeformableDETR.pre_transformer``/``forward_encoder`` on
    this module, ``DINO.pre_decoder`` and ``DINO.forward_decoder`` - with its refinement
    branches as an option - on the branch); only the composition is written here. Shared
    parameters are owned once (they are not registered inside the branches), so the state dict
    has no duplicated tensors; :attr:`shared_modules` names them (what
    ``FoundationX.shared_modules('loc')`` and so ``LockReleaseHook`` freeze under
    ``loc_head.``). The memory projections are per dataset
    (see :class:`DINODecoderBranch`): they only feed that dataset's query selection (and, with
    ``memory_proj``, its decoder), and they keep training while the shared encoder is locked.

    Every trainable parameter of the shared part and of the trained dataset's branch gets a
    gradient from :meth:`loss` on a batch with boxes; other branches get none. (In the
    authors' release the two-stage scoring of every decoder - ``enc_output``,
    ``enc_output_norm``, ``enc_out_class_embed``, ``enc_out_bbox_embed`` - only feeds a loss
    of weight 0, ``interm_loss_coef = 0.0``, so it selects the queries with its
    initialisation; here ``enc_loss_*`` trains it.) The student of a student-teacher
    pair takes its losses, query states and anchors from one pass with
    :meth:`loss_and_query_states`; the teacher decodes those anchors with :meth:`query_states`.

    Args:
        dataset_classes (dict[str, int]): dataset name -> number of box classes; one branch
            each.
        in_channels (Sequence[int]): channels of the backbone stages picked by ``in_indices``.
        in_indices (Sequence[int]): which backbone outputs feed the detector (stages 2-4 of
            a 4-stage backbone: strides 8, 16, 32).
        embed_dims (int): transformer width; DINO's positional encoding needs 256
            (``2 * positional_encoding.num_feats``).
        num_feature_levels (int): levels seen by the deformable attention; levels beyond
            ``len(in_indices)`` come from extra stride-2 convs (4 = DINO-4scale).
        num_queries (int): matching queries per image (900 in DINO). Must not exceed the
            number of encoder tokens, sum over levels of H_l * W_l.
        with_box_refine (bool): must be True (DINO).
        as_two_stage (bool): must be True (DINO).
        neck (dict): input projection config (``mmdet.ChannelMapper``) without
            ``in_channels``, ``out_channels`` and ``num_outs`` (set here); ``bias=True`` gives
            the conv biases of IDEA's DINO.
        encoder (dict): ``DeformableDetrTransformerEncoder`` config.
        decoder (dict): ``DinoTransformerDecoder`` config, shared by every branch's copy.
        positional_encoding (dict): ``SinePositionalEncoding`` config.
        dn_cfg (dict): ``CdnQueryGenerator`` config (de-noising queries, training only).
        bbox_head (dict): ``mmdet.DINOHead`` config without ``num_classes``.
        train_cfg (dict): head training config (Hungarian assigner with its match costs).
        test_cfg (dict): head test config; ``max_per_img`` boxes per image.
        branch_cfg (dict, optional): further :class:`DINODecoderBranch` arguments, the same
            for every dataset (``memory_proj``, ``separate_box_refine``, ``num_class_rows``,
            ``first_class_row``, ``num_label_rows``, ``ref_eps``). Defaults to None: mmdet's
            DINO.
        init_cfg (dict, optional): initialisation config. Defaults to None.
    """

    #: the parts every dataset uses, i.e. every parameter outside ``branches``: the input
    #: projection, the level embedding and the encoder (the positional encoding has none)
    shared_modules = ('neck', 'level_embed', 'encoder')

    # mmdet's Deformable DETR code for the encoder side, run on this module's attributes
    # (``positional_encoding``, ``level_embed``, ``encoder``).
    pre_transformer = DeformableDETR.pre_transformer
    forward_encoder = DeformableDETR.forward_encoder
    get_valid_ratio = staticmethod(DeformableDETR.get_valid_ratio)

    def __init__(self,
                 dataset_classes: Dict[str, int],
                 in_channels: Sequence[int] = (256, 512, 1024),
                 in_indices: Sequence[int] = (1, 2, 3),
                 embed_dims: int = 256,
                 num_feature_levels: int = 4,
                 num_queries: int = 900,
                 with_box_refine: bool = True,
                 as_two_stage: bool = True,
                 neck: ConfigType = DINO_NECK,
                 encoder: ConfigType = DINO_ENCODER,
                 decoder: ConfigType = DINO_DECODER,
                 positional_encoding: ConfigType = DINO_POSITIONAL_ENCODING,
                 dn_cfg: ConfigType = DINO_DN_CFG,
                 bbox_head: ConfigType = DINO_HEAD,
                 train_cfg: ConfigType = DINO_TRAIN_CFG,
                 test_cfg: OptConfigType = DINO_TEST_CFG,
                 branch_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not (with_box_refine and as_two_stage):
            raise ValueError('DINO needs with_box_refine=True and as_two_stage=True, got '
                             f'{with_box_refine} and {as_two_stage}')
        if not dataset_classes:
            raise ValueError('dataset_classes is empty: give {dataset name: num box classes}')
        if len(in_channels) != len(in_indices):
            raise ValueError(f'in_channels {tuple(in_channels)} and in_indices '
                             f'{tuple(in_indices)} must have the same length')
        if num_feature_levels < len(in_indices):
            raise ValueError(f'num_feature_levels ({num_feature_levels}) must be >= the number '
                             f'of backbone stages used ({len(in_indices)})')
        max_per_img = (test_cfg or {}).get('max_per_img', num_queries)
        for name, num_classes in dataset_classes.items():
            if max_per_img > num_queries * num_classes:
                raise ValueError(f'test_cfg.max_per_img ({max_per_img}) exceeds num_queries * '
                                 f'num_classes ({num_queries} * {num_classes}) of dataset '
                                 f'{name!r}')
        self.dataset_names: List[str] = list(dataset_classes)
        self.in_channels = tuple(in_channels)
        self.in_indices = tuple(in_indices)
        self.embed_dims = embed_dims
        self.num_feature_levels = num_feature_levels
        self.num_queries = num_queries

        neck = copy.deepcopy(neck)
        _fill_cfg(neck, 'neck', in_channels=list(in_channels), out_channels=embed_dims,
                  num_outs=num_feature_levels)
        self.neck = MODELS.build(neck)
        self.positional_encoding = SinePositionalEncoding(**positional_encoding)
        if 2 * self.positional_encoding.num_feats != embed_dims:
            raise ValueError(f'embed_dims ({embed_dims}) must be 2 * positional_encoding.'
                             f'num_feats ({self.positional_encoding.num_feats})')
        self.encoder = DeformableDetrTransformerEncoder(**self.encoder_cfg(encoder))
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, embed_dims))

        decoder = self.decoder_cfg(decoder)
        branch_cfg = dict(branch_cfg or {})
        for key in ('num_classes', 'embed_dims', 'num_queries', 'decoder', 'dn_cfg',
                    'bbox_head', 'train_cfg', 'test_cfg'):
            if key in branch_cfg:
                raise ValueError(f'branch_cfg must not set {key!r}: it is a SharedDINO '
                                 'argument or derived from the dataset')
        self.branches = ModuleDict({
            name: DINODecoderBranch(
                num_classes=num_classes, embed_dims=embed_dims, num_queries=num_queries,
                decoder=decoder, dn_cfg=dn_cfg, bbox_head=bbox_head, train_cfg=train_cfg,
                test_cfg=test_cfg, **branch_cfg)
            for name, num_classes in dataset_classes.items()
        })

    def encoder_cfg(self, encoder: ConfigType) -> dict:
        """The encoder config with the detector's width and number of levels filled in (as
        this module and an mmdet ``DINO`` of the same sizes build it)."""
        encoder = copy.deepcopy(encoder)
        layer = encoder.setdefault('layer_cfg', {})
        _fill_cfg(layer.setdefault('self_attn_cfg', {}), 'encoder.layer_cfg.self_attn_cfg',
                  embed_dims=self.embed_dims, num_levels=self.num_feature_levels)
        _fill_cfg(layer.setdefault('ffn_cfg', {}), 'encoder.layer_cfg.ffn_cfg',
                  embed_dims=self.embed_dims)
        return encoder

    def decoder_cfg(self, decoder: ConfigType) -> dict:
        """The decoder config with the detector's width and number of levels filled in (as
        the branches and an mmdet ``DINO`` of the same sizes build it)."""
        decoder = copy.deepcopy(decoder)
        if not decoder.setdefault('return_intermediate', True):
            raise ValueError('decoder.return_intermediate must be True: the DINO head '
                             'predicts from every decoder layer')
        if decoder.setdefault('post_norm_cfg', None) is not None:
            raise ValueError('decoder.post_norm_cfg must be None: DinoTransformerDecoder '
                             'normalises with its own `norm`')
        layer = decoder.setdefault('layer_cfg', {})
        where = 'decoder.layer_cfg'
        _fill_cfg(layer.setdefault('self_attn_cfg', {}), f'{where}.self_attn_cfg',
                  embed_dims=self.embed_dims)
        _fill_cfg(layer.setdefault('cross_attn_cfg', {}), f'{where}.cross_attn_cfg',
                  embed_dims=self.embed_dims, num_levels=self.num_feature_levels)
        _fill_cfg(layer.setdefault('ffn_cfg', {}), f'{where}.ffn_cfg',
                  embed_dims=self.embed_dims)
        return decoder

    def init_weights(self) -> None:
        """Initialise as mmdet's ``DINO.init_weights``: children first (neck, branches with
        their heads), then Xavier for the encoder's matrices, the deformable attentions'
        sampling grid, and a normal ``level_embed``."""
        super().init_weights()
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.encoder.modules():
            if isinstance(m, MultiScaleDeformableAttention):
                m.init_weights()
        nn.init.normal_(self.level_embed)

    def branch(self, dataset: str) -> DINODecoderBranch:
        """The per-dataset modules of ``dataset``; a KeyError names the known datasets."""
        if dataset not in self.branches:
            raise KeyError(f'SharedDINO has no branch for dataset {dataset!r}; it was built '
                           f'for {self.dataset_names}')
        return self.branches[dataset]

    def _check_inputs(self, feats: Sequence[Tensor], batch_data_samples: SampleList) -> None:
        """Raise a clear error for feature maps or metainfo the detector cannot use."""
        if len(feats) <= max(self.in_indices):
            raise ValueError(f'SharedDINO takes backbone outputs {self.in_indices} but got '
                             f'{len(feats)} feature maps')
        for i, c in zip(self.in_indices, self.in_channels):
            if feats[i].dim() != 4 or feats[i].shape[1] != c:
                raise ValueError(f'feats[{i}] must have shape (B, {c}, H, W), got '
                                 f'{tuple(feats[i].shape)}')
        if len(batch_data_samples) != feats[0].shape[0]:
            raise ValueError(f'{len(batch_data_samples)} data samples for a batch of '
                             f'{feats[0].shape[0]} feature maps')
        for key in ('batch_input_shape', 'img_shape'):
            if key not in batch_data_samples[0].metainfo:
                raise KeyError(f'data sample metainfo lacks {key!r}; the data preprocessor '
                               'must set it, as mmdet.DetDataPreprocessor does')

    def encode(self, feats: Sequence[Tensor],
               batch_data_samples: SampleList) -> Tuple[dict, dict]:
        """The shared part: input projection, positional encoding and encoder (mmdet's
        ``pre_transformer -> forward_encoder``), run once for any number of branches.

        Args:
            feats (Sequence[Tensor]): backbone outputs, ``feats[i]`` of shape
                (B, C_i, H_i, W_i); those at ``in_indices`` are used.
            batch_data_samples (list[DetDataSample]): metainfo ``img_shape`` and
                ``batch_input_shape``.

        Returns:
            tuple[dict, dict]: the encoder outputs (``memory`` (B, N_tokens, C),
            ``memory_mask``, ``spatial_shapes``) and the decoder inputs that do not depend on
            the branch (``memory_mask``, ``spatial_shapes``, ``level_start_index``,
            ``valid_ratios``); :meth:`decode` takes both.
        """
        self._check_inputs(feats, batch_data_samples)
        mlvl_feats = self.neck(tuple(feats[i] for i in self.in_indices))
        num_tokens = sum(f.shape[-2] * f.shape[-1] for f in mlvl_feats)
        if num_tokens < self.num_queries:
            raise ValueError(f'num_queries ({self.num_queries}) exceeds the {num_tokens} encoder '
                             f'tokens of {[tuple(f.shape[-2:]) for f in mlvl_feats]} feature '
                             'maps: use larger images or fewer queries')
        encoder_inputs, decoder_inputs = self.pre_transformer(mlvl_feats, batch_data_samples)
        return self.forward_encoder(**encoder_inputs), decoder_inputs

    def decode(self, encoded: Tuple[dict, dict], batch_data_samples: SampleList,
               dataset: str) -> dict:
        """The branch of ``dataset`` on :meth:`encode`'s output (mmdet's DINO
        ``pre_decoder -> forward_decoder``); ``encoded`` is not modified, so several branches
        can decode one encoding.

        Returns:
            dict: the DINO head inputs, as :meth:`forward_transformer` returns them.
        """
        encoder_outputs, decoder_inputs = encoded
        branch = self.branch(dataset)
        memory = branch.project_memory(encoder_outputs['memory'])
        query_inputs, head_inputs = branch.pre_decoder(
            **dict(encoder_outputs, memory=memory), batch_data_samples=batch_data_samples)
        head_inputs.update(branch.forward_decoder(**decoder_inputs, **query_inputs))
        return head_inputs

    def forward_transformer(self, feats: Sequence[Tensor], batch_data_samples: SampleList,
                            dataset: str) -> dict:
        """Shared projection and encoder, then the branch of ``dataset`` (mmdet's DINO
        ``pre_transformer -> forward_encoder -> pre_decoder -> forward_decoder``):
        :meth:`decode` of :meth:`encode`.

        Args:
            feats (Sequence[Tensor]): backbone outputs, ``feats[i]`` of shape
                (B, C_i, H_i, W_i); those at ``in_indices`` are used.
            batch_data_samples (list[DetDataSample]): metainfo ``img_shape`` and
                ``batch_input_shape``; in training also ``gt_instances`` (``bboxes`` (N, 4)
                xyxy pixels of the input, ``labels`` (N,)) for the de-noising queries.
            dataset (str): which branch to run.

        Returns:
            dict: the DINO head inputs: ``hidden_states`` (num_layers, B, Q_total, C),
            ``references`` (list of num_layers + 1 tensors (B, Q_total, 4), normalised
            cxcywh); in training also ``enc_outputs_class`` (B, num_queries, num_classes),
            ``enc_outputs_coord`` (B, num_queries, 4) and ``dn_meta``. Q_total is
            ``num_queries`` plus, in training, the de-noising queries placed before them.
        """
        self.branch(dataset)  # an unknown dataset fails before any work
        return self.decode(self.encode(feats, batch_data_samples), batch_data_samples, dataset)

    def _matching_part(self, head_inputs: dict) -> Tuple[Tensor, List[Tensor]]:
        """Drop the de-noising queries (training only) from the decoder outputs.

        Returns:
            tuple: ``hidden_states`` (num_layers, B, num_queries, C) and ``references``
            (num_layers + 1 tensors (B, num_queries, 4)) of the matching queries.
        """
        dn_meta = head_inputs.get('dn_meta')
        num_dn = dn_meta['num_denoising_queries'] if dn_meta else 0
        hidden_states = head_inputs['hidden_states'][:, :, num_dn:]
        references = [ref[:, num_dn:] for ref in head_inputs['references']]
        return hidden_states, references

    def loss_and_query_states(self, feats: Sequence[Tensor], batch_data_samples: SampleList,
                              dataset: str) -> Tuple[Dict[str, Tensor], Tensor, Tensor]:
        """:meth:`loss`, and what the student of a student-teacher pair compares, from one
        forward pass.

        Returns:
            tuple: the loss dict of :meth:`loss`; the matching queries' decoder hidden states
            (num_layers, B, num_queries, embed_dims), after the decoder's final LayerNorm, in
            the order of the two-stage query selection; and their initial anchor boxes
            (B, num_queries, 4), normalised cxcywh, detached (the teacher decodes them with
            :meth:`query_states`).
        """
        branch = self.branch(dataset)
        batch_data_samples = branch.with_row_labels(batch_data_samples)
        head_inputs = self.forward_transformer(feats, batch_data_samples, dataset)
        losses = branch.loss(head_inputs, batch_data_samples)
        hidden_states, references = self._matching_part(head_inputs)
        # references[0] are the initial anchors (detached by DINO, but sliced from a stack
        # with the refined boxes, hence the explicit detach)
        return losses, hidden_states, references[0].detach()

    def loss(self, feats: Sequence[Tensor], batch_data_samples: SampleList,
             dataset: str) -> Dict[str, Tensor]:
        """DINO losses of one single-dataset batch.

        Args:
            feats (Sequence[Tensor]): backbone outputs (B, C_i, H_i, W_i), strides 4/8/16/32.
            batch_data_samples (list[DetDataSample]): with ``gt_instances`` (``bboxes``
                (N, 4) xyxy in input pixels, ``labels`` (N,) into the dataset's classes; N may
                be 0) and metainfo ``img_shape``, ``batch_input_shape``.
            dataset (str): the dataset whose branch is trained.

        Returns:
            dict[str, Tensor]: mmdet DINOHead's keys, un-prefixed: ``loss_cls``,
            ``loss_bbox``, ``loss_iou`` (last decoder layer), ``d{i}.loss_*`` (earlier layers),
            ``enc_loss_*`` (two-stage proposals), ``dn_loss_*`` and ``d{i}.dn_loss_*``
            (de-noising).
        """
        return self.loss_and_query_states(feats, batch_data_samples, dataset)[0]

    def predict(self, feats: Sequence[Tensor], batch_data_samples: SampleList, dataset: str,
                rescale: bool = True) -> List[InstanceData]:
        """Boxes of one single-dataset batch (call in eval mode, as for any mmdet detector).

        Args:
            feats (Sequence[Tensor]): backbone outputs (B, C_i, H_i, W_i).
            batch_data_samples (list[DetDataSample]): metainfo ``img_shape``,
                ``batch_input_shape`` and, when ``rescale``, ``scale_factor`` (w, h).
            dataset (str): which branch predicts.
            rescale (bool): return boxes in the original image (divided by
                ``scale_factor``) instead of the network input. Defaults to True.

        Returns:
            list[InstanceData]: per image ``bboxes`` (K, 4) xyxy, ``scores`` (K,), ``labels``
            (K,), K = ``test_cfg.max_per_img``, sorted by score.
        """
        return self.predict_datasets(feats, batch_data_samples, [dataset], rescale)[dataset]

    def predict_datasets(self, feats: Sequence[Tensor], batch_data_samples: SampleList,
                         datasets: Sequence[str],
                         rescale: bool = True) -> Dict[str, List[InstanceData]]:
        """:meth:`predict` of several branches on one run of the shared encoder (what
        ``FoundationX.predict(heads='all')`` needs); arguments as :meth:`predict`.

        Returns:
            dict[str, list[InstanceData]]: dataset -> the per-image boxes of its branch.
        """
        for dataset in datasets:
            self.branch(dataset)
        if rescale:
            for i, sample in enumerate(batch_data_samples):
                if sample.metainfo.get('scale_factor') is None:
                    raise KeyError(f'data sample {i} has no metainfo scale_factor, needed to '
                                   'rescale boxes to the original image (or pass rescale=False)')
        encoded = self.encode(feats, batch_data_samples)
        results = {}
        for dataset in datasets:
            head_inputs = self.decode(encoded, batch_data_samples, dataset)
            hidden_states, references = self._matching_part(head_inputs)
            results[dataset] = self.branch(dataset).predict(
                hidden_states, references, batch_data_samples, rescale)
        return results

    def query_states(self, feats: Sequence[Tensor], batch_data_samples: SampleList,
                     dataset: str, anchors: Tensor) -> Tensor:
        """The decoder states of ``dataset``'s branch for given anchor boxes: the shared
        projection and encoder, then the branch's decoder with its content queries and
        ``anchors`` in place of its own two-stage selection (mmdet's
        ``DINO.forward_decoder``). The teacher of a student-teacher pair decodes the
        student's anchors (from :meth:`loss_and_query_states`), so that query ``i`` of both
        looks at the same place.

        Args:
            feats (Sequence[Tensor]): backbone outputs (B, C_i, H_i, W_i).
            batch_data_samples (list[DetDataSample]): metainfo ``img_shape``,
                ``batch_input_shape``.
            dataset (str): the decoder branch to run.
            anchors (Tensor): initial reference boxes (B, num_queries, 4), normalised cxcywh.

        Returns:
            Tensor: shape (num_layers, B, num_queries, embed_dims).
        """
        encoder_outputs, decoder_inputs = self.encode(feats, batch_data_samples)
        branch = self.branch(dataset)
        # (num_queries, C) -> (B, num_queries, C), as DINO.pre_decoder builds its queries
        query = branch.query_embedding.weight[None].repeat(anchors.shape[0], 1, 1)
        return branch.forward_decoder(query=query, reference_points=anchors, dn_mask=None,
                                      memory=branch.project_memory(encoder_outputs['memory']),
                                      **decoder_inputs)['hidden_states']
