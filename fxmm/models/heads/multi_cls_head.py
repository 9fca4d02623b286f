"""One multi-label linear classifier per dataset on the pooled backbone feature."""
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import CXRDataSample
from .prior_init import PriorProb, check_prior_prob, init_prior_classifiers


@MODELS.register_module()
class MultiDatasetClsHead(BaseModule):
    """Per-dataset linear heads (Foundation X, Ark) on pooled features.

    ``x (B, in_channels) -> [projector] -> Linear(., dataset_classes[dataset]) -> logits
    (B, C)``. The optional projector is shared by all datasets: ``Linear(in_channels,
    projector_dims)`` (Ark's 1024 -> 1376), or with ``projector_mlp=True`` ``Linear(in_channels,
    projector_dims) -> ReLU -> Linear(projector_dims, projector_dims)`` (the MLP projector of
    the released Ark-6, Ark's ``use_mlp``); Foundation X uses none. Only the batch's dataset
    head runs, so the other heads get no gradient.

    Args:
        in_channels (int): Channels of the pooled feature (1024 for Swin-B).
        dataset_classes (dict[str, int]): Dataset name -> number of classes (one head each).
            ``FoundationX`` fills it from its ``datasets`` argument.
        projector_dims (int, optional): Output size of the shared projector; None for no
            projector. Defaults to None.
        projector_mlp (bool): Make the projector the Linear-ReLU-Linear MLP (needs
            ``projector_dims``). Defaults to False.
        loss_cls (dict): Config of the multi-label loss, called as
            ``loss(logits (B, C), target (B, C))``. Defaults to
            ``dict(type='MaskedBCEWithLogitsLoss')`` (nan / -1 targets are ignored).
        prior_prob (float | dict[str, float], optional): Start the sigmoid scores at this
            probability (one for all datasets, or per dataset name): :meth:`init_weights`
            gives each dataset's linear head Normal(0, 0.01) weights and the bias
            ``log(p / (1 - p))``, RetinaNet's initialisation, so that a head whose labels
            are rare need not first move its bias there. None keeps PyTorch's default
            initialisation. Defaults to None.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 dataset_classes: Dict[str, int],
                 projector_dims: Optional[int] = None,
                 projector_mlp: bool = False,
                 loss_cls: dict = dict(type='MaskedBCEWithLogitsLoss'),
                 prior_prob: PriorProb = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if not dataset_classes:
            raise ValueError('MultiDatasetClsHead: dataset_classes is empty; give '
                             '{dataset name: number of classes}')
        self.in_channels = in_channels
        self.dataset_classes = dict(dataset_classes)
        if projector_mlp and projector_dims is None:
            raise ValueError('MultiDatasetClsHead: projector_mlp=True needs projector_dims')
        self.projector = None
        if projector_mlp:
            self.projector = nn.Sequential(nn.Linear(in_channels, projector_dims), nn.ReLU(),
                                           nn.Linear(projector_dims, projector_dims))
        elif projector_dims is not None:
            self.projector = nn.Linear(in_channels, projector_dims)
        head_in = projector_dims if projector_dims is not None else in_channels
        self.heads = nn.ModuleDict(
            {name: nn.Linear(head_in, n) for name, n in self.dataset_classes.items()})
        self.loss_cls = MODELS.build(loss_cls)
        self.priors = check_prior_prob(prior_prob, self.dataset_classes, type(self).__name__)

    def init_weights(self) -> None:
        """``init_cfg``'s initialisation, then the ``prior_prob`` heads' (if any)."""
        super().init_weights()
        init_prior_classifiers(self.heads, self.priors)

    def project(self, x: Tensor) -> Tensor:
        """Apply the shared projector, if any (the feature Ark's consistency loss compares).

        Args:
            x (Tensor): Pooled features, shape (B, in_channels).

        Returns:
            Tensor: Shape (B, projector_dims), or ``x`` itself without a projector.
        """
        return x if self.projector is None else self.projector(x)

    def forward(self, x: Tensor, dataset: str) -> Tensor:
        """Logits of ``dataset``'s classes.

        Args:
            x (Tensor): Pooled features, shape (B, in_channels).
            dataset (str): Name of the dataset whose head runs.

        Returns:
            Tensor: Logits, shape (B, dataset_classes[dataset]).
        """
        return self.heads[dataset](self.project(x))

    def loss(self, x: Tensor, data_samples: List[CXRDataSample], dataset: str) -> dict:
        """Multi-label loss of ``dataset``'s head against ``gt_cls.label``.

        Args:
            x (Tensor): Pooled features, shape (B, in_channels).
            data_samples (list[CXRDataSample]): B samples with ``gt_cls.label`` (C,)
                holding 1 / 0 / soft values, -1 (uncertain) or nan (missing).
            dataset (str): Name of the batch's dataset.

        Returns:
            dict[str, Tensor]: ``{'loss_cls': scalar}``.
        """
        logits = self(x, dataset)
        target = torch.stack([sample.gt_cls.label for sample in data_samples]).to(logits)
        if target.shape != logits.shape:
            raise ValueError(f'dataset {dataset!r}: gt_cls.label has {target.shape[-1]} '
                             f'entries per image, its cls head {logits.shape[-1]} classes '
                             f'(check cls_classes of {dataset!r})')
        return dict(loss_cls=self.loss_cls(logits, target))

    def predict(self, x: Tensor, dataset: str) -> Tensor:
        """Sigmoid scores of ``dataset``'s classes.

        Args:
            x (Tensor): Pooled features, shape (B, in_channels).
            dataset (str): Name of the dataset whose head runs.

        Returns:
            Tensor: Probabilities, shape (B, dataset_classes[dataset]).
        """
        return self(x, dataset).sigmoid()
