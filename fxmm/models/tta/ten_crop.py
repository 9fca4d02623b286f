"""Ten-crop test-time augmentation of the classification path, as Foundation Ark evaluates.

Ark (Ma et al., MICCAI 2023, https://arxiv.org/abs/2310.09507) tests its teacher on images
resized to 256 x 256 with torchvision's ``TenCrop(224)`` - the four corner crops, the centre
crop and the same five of the horizontally mirrored image - and averages the sigmoid scores
of the ten views.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import LabelData
from torch import Tensor, nn
from torchvision.transforms import functional as tvF

from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import CXRDataSample
from fxmm.structures.laterality import lr_permutation, normalise_lr_pairs
from ..data_preprocessors.cxr_data_preprocessor import batch_pair

# the views of torchvision's five_crop, in its order
FIVE_CROPS = ('top_left', 'top_right', 'bottom_left', 'bottom_right', 'centre')


@MODELS.register_module()
class TenCropTTA(BaseTTAModel):
    """Average a model's classification scores over ten crops of each test image.

    For a batch of a ``cls`` pair, the images (after the wrapped model's data preprocessor,
    padding removed with ``img_shape``) give ten views of ``crop_size`` by
    :func:`torchvision.transforms.functional.ten_crop`: the top-left, top-right,
    bottom-left, bottom-right and centre crops (centre offset ``round((H - h) / 2)``, as
    torchvision), then the same five crops of the horizontally mirrored image. Each view
    runs through the wrapped model's ``predict`` as a batch of its own, and::

        pred_cls.score = mean over the views v of sigmoid(logits(v))   # (C,) per image

    Laterality: a horizontal mirror puts the patient's right side where the left belongs.
    Ark mirrors anyway (torchvision ``TenCrop``) and fxmm follows it by default; none of
    Ark's image-level classes names a side, so a mirrored view scores the same findings
    (on an anatomy - heart on the right - that training never shows, since Ark trains
    without flips). For a dataset whose cls classes do name sides ("Left Lung Opacity"),
    ``lr_pairs`` says which classes a mirror swaps, and the mirrored views' scores of each
    pair are swapped back before averaging; a lateral class without a partner is refused
    (as :class:`~fxmm.datasets.transforms.CXRRandomFlip` refuses it). ``flip=False`` gives
    the five unmirrored crops only.

    Batches of other tasks (``loc``, ``seg``) go to the wrapped model's ``test_step``
    unchanged. The wrapper follows mmengine's :class:`~mmengine.model.BaseTTAModel`, so
    checkpoints of the wrapped model load into it as they are, and it is used the
    OpenMMLab way, around the config's model at test time::

        tta_model = dict(type='TenCropTTA', crop_size=224)
        # tools/test.py --tta:  cfg.model = dict(**cfg.tta_model, module=cfg.model)

    The test pipeline must resize every image to one size at least ``crop_size`` (Ark:
    256 x 256 for 224 crops) and must not crop.

    Args:
        module (dict | nn.Module): the model to test (a ``TeacherStudent`` - whose
            ``predict_on`` picks the copy - or a ``FoundationX``); it must have a
            ``data_preprocessor``, ``test_step`` and ``forward(inputs, data_samples,
            mode='predict')`` writing ``pred_cls.score`` (C,), and (for the laterality check
            of ``flip=True``) ``class_names[dataset]['cls_classes']`` on itself or on its
            ``student``.
        crop_size (int | Sequence[int]): (h, w) of the crops; an int means square.
            Defaults to 224 (Ark).
        flip (bool): add the five crops of the mirrored image (ten views, Ark); False
            gives five. Defaults to True.
        lr_pairs (dict[str, list], optional): dataset name -> ``[[left_class,
            right_class], ...]``, the cls classes a mirror swaps. Defaults to None.
    """

    def __init__(self,
                 module: Union[dict, nn.Module],
                 crop_size: Union[int, Sequence[int]] = 224,
                 flip: bool = True,
                 lr_pairs: Optional[Dict[str, Sequence[Sequence[str]]]] = None):
        if isinstance(module, dict):
            # fxmm's registry, so that no default scope is needed
            module = MODELS.build(module)
        super().__init__(module)
        size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f'TenCropTTA: crop_size must be a positive int or (h, w), got '
                             f'{crop_size!r}')
        self.crop_size: Tuple[int, int] = size
        self.flip = flip
        self.lr_pairs = {name: normalise_lr_pairs(pairs, f'TenCropTTA lr_pairs[{name!r}]')
                         for name, pairs in (lr_pairs or {}).items()}
        # dataset -> the index map that un-mirrors a mirrored view's scores (None: identity)
        self._unmirror: Dict[str, Optional[Tensor]] = {}

    @property
    def num_views(self) -> int:
        """int: 10 with ``flip``, else 5."""
        return 2 * len(FIVE_CROPS) if self.flip else len(FIVE_CROPS)

    def views(self, inputs: Tensor) -> List[Tensor]:
        """The crops of a batch, in torchvision's order (:data:`FIVE_CROPS`, then the same
        five of the mirrored images).

        Args:
            inputs (Tensor): images without padding, shape (B, C, H, W), H and W at least
                ``crop_size``.

        Returns:
            list[Tensor]: :attr:`num_views` tensors of shape (B, C, h, w).
        """
        height, width = inputs.shape[-2:]
        if height < self.crop_size[0] or width < self.crop_size[1]:
            raise ValueError(f'TenCropTTA: crop_size {self.crop_size} (h, w) is larger than '
                             f'the images, {(height, width)}; resize the test images to at '
                             'least the crop size (Ark: 256 for 224 crops)')
        crop = tvF.ten_crop if self.flip else tvF.five_crop
        return list(crop(inputs, list(self.crop_size)))

    @staticmethod
    def _image_size(data_samples: List[CXRDataSample], inputs: Tensor) -> Tuple[int, int]:
        """The (H, W) all images of the batch share before padding (metainfo ``img_shape``)."""
        shapes = {tuple(s.metainfo.get('img_shape', inputs.shape[-2:]))[:2]
                  for s in data_samples}
        if len(shapes) != 1:
            raise ValueError(f'TenCropTTA: the images of a batch must share one size (resize '
                             f'them in the test pipeline), got img_shape {sorted(shapes)}')
        height, width = shapes.pop()
        return int(height), int(width)

    def _cls_classes(self, dataset: str) -> List[str]:
        """The wrapped model's cls class names of ``dataset``."""
        model = getattr(self.module, 'student', self.module)
        class_names = getattr(model, 'class_names', None)
        if class_names is None or dataset not in class_names:
            raise TypeError(f'TenCropTTA(flip=True) checks the laterality of the cls classes '
                            f'of {dataset!r} in the wrapped model\'s class_names, but '
                            f'{type(model).__name__} has none for it')
        return list(class_names[dataset]['cls_classes'])

    def unmirror_index(self, dataset: str) -> Optional[Tensor]:
        """The index map ``perm`` with ``scores[..., perm]`` turning a mirrored view's
        scores into the unmirrored image's (an involution); None when no class swaps.

        Raises:
            ValueError: when a cls class of ``dataset`` names a side (or is in a pair) and
                its partner is missing.
        """
        if dataset not in self._unmirror:
            classes = tuple(self._cls_classes(dataset))
            perm, unpaired = lr_permutation(classes, self.lr_pairs.get(dataset, ()))
            if unpaired:
                raise ValueError(
                    f'TenCropTTA: the cls classes {list(unpaired)} of {dataset!r} name a side '
                    'but have no partner, so a mirrored view would score the wrong side; '
                    f"give lr_pairs={{'{dataset}': [[left, right], ...]}} or flip=False")
            identity = perm == tuple(range(len(classes)))
            self._unmirror[dataset] = None if identity else torch.tensor(perm)
        return self._unmirror[dataset]

    def merge_preds(self, data_samples_list: List[List[CXRDataSample]]) -> List[CXRDataSample]:
        """Average the cls scores of each image's views.

        Args:
            data_samples_list (list[list[CXRDataSample]]): per image, its views' samples
                with ``pred_cls.score`` (C,) (mirrored views already un-mirrored).

        Returns:
            list[CXRDataSample]: per image, its first view's sample with ``pred_cls.score``
            the mean over the views, shape (C,).
        """
        merged = []
        for views in data_samples_list:
            score = torch.stack([view.pred_cls.score for view in views]).mean(dim=0)
            sample = views[0]
            sample.pred_cls = LabelData(score=score)
            merged.append(sample)
        return merged

    def test_step(self, data: dict) -> List[CXRDataSample]:
        """Predict a batch: ten-crop averaged scores for ``cls``, the wrapped model's
        ``test_step`` otherwise.

        Args:
            data (dict): a collated batch, ``inputs`` (list of (1, H, W) tensors) and
                ``data_samples``, of one (dataset, task) pair.

        Returns:
            list[CXRDataSample]: the batch's samples with ``pred_cls.score`` (C,) written
            in (``cls``), or the wrapped model's outputs.
        """
        dataset, task = batch_pair(data['data_samples'])
        if task != 'cls':
            return self.module.test_step(data)
        data = self.module.data_preprocessor(data, False)
        inputs, data_samples = data['inputs'], data['data_samples']
        height, width = self._image_size(data_samples, inputs)
        unmirror = self.unmirror_index(dataset) if self.flip else None
        crop_meta = dict(img_shape=self.crop_size, batch_input_shape=self.crop_size)
        per_view = []
        for idx, view in enumerate(self.views(inputs[..., :height, :width])):
            copies = []
            for sample in data_samples:
                copy = sample.clone()
                copy.set_metainfo(crop_meta)
                copies.append(copy)
            preds = self.module(view, copies, mode='predict')
            if unmirror is not None and idx >= len(FIVE_CROPS):
                for pred in preds:
                    score = pred.pred_cls.score
                    pred.pred_cls = LabelData(score=score[unmirror.to(score.device)])
            per_view.append(preds)
        merged = self.merge_preds([list(views) for views in zip(*per_view)])
        for sample, result in zip(data_samples, merged):
            sample.pred_cls = result.pred_cls
        return data_samples
