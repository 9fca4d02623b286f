"""Batch chest X-rays of one (dataset, task) pair into a normalised 3-channel tensor."""
import math
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor, stack_batch

from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import CXRDataSample


def batch_pair(data_samples: Sequence[CXRDataSample]) -> tuple:
    """The (dataset, task) pair of a batch, checking that all its samples share it.

    Args:
        data_samples (Sequence[CXRDataSample]): The batch's samples; metainfo ``dataset`` and
            ``task`` may be absent from all of them (inference on arbitrary images).

    Returns:
        tuple: ``(dataset, task)``, ``(None, None)`` where the samples carry neither.

    Raises:
        ValueError: If the samples hold more than one pair, naming the pairs.
    """
    pairs = [(s.metainfo.get('dataset'), s.metainfo.get('task')) for s in data_samples]
    distinct = sorted(set(pairs), key=str)
    if len(distinct) > 1:
        names = [f'{d}.{t}' for d, t in distinct]
        raise ValueError(f'a batch must hold one (dataset, task) pair, got {names}; sample '
                         'batches with fxmm\'s MultiTaskSampler (one pair per batch)')
    return distinct[0]


@MODELS.register_module()
class CXRDataPreprocessor(BaseDataPreprocessor):
    """Stack grey chest X-rays into a normalised (B, 3, H, W) batch for a Swin backbone.

    Per image ``(1, H, W)`` in 0..1: the grey channel is repeated to 3, normalised with
    ``(x - mean) / std`` per channel, and the batch is padded bottom/right to a common size
    divisible by ``pad_size_divisor`` (no padding when the images already share such a size).
    Each data sample gets metainfo ``batch_input_shape`` (H, W of the batch) and ``pad_shape``
    (its own size rounded up to the divisor), as mmdet's ``DetDataPreprocessor`` sets them
    (mmdet's DINO reads ``batch_input_shape`` and ``img_shape``). Data samples (with their
    gt tensors) are moved to the model's device.

    A batch must hold a single (dataset, task) pair: a ``ValueError`` names the pairs
    otherwise.

    Args:
        mean (Sequence[float]): Per-channel mean of the 0..1 input. Defaults to ImageNet's
            (0.485, 0.456, 0.406).
        std (Sequence[float]): Per-channel std of the 0..1 input. Defaults to ImageNet's
            (0.229, 0.224, 0.225).
        pad_size_divisor (int): The batch H and W are padded to multiples of it.
            Defaults to 32.
        pad_value (float): Value of the padding, after normalisation. Defaults to 0.
        non_blocking (bool): Non-blocking host-to-device copies. Defaults to False.
    """

    def __init__(self,
                 mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225),
                 pad_size_divisor: int = 32,
                 pad_value: float = 0.,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'CXRDataPreprocessor: mean and std need 3 values (one per '
                             f'repeated channel), got mean={mean}, std={std}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(3, 1, 1),
                             persistent=False)
        self.pad_size_divisor = pad_size_divisor
        self.pad_value = pad_value

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise, pad and stack a batch.

        Args:
            data (dict): ``inputs``: list of B float tensors (1, H_i, W_i) in 0..1 (or a
                (B, 1, H, W) tensor); ``data_samples`` (optional): list of B
                :class:`CXRDataSample`.
            training (bool): Unused; the same processing applies in training and testing.

        Returns:
            dict: ``inputs`` float tensor (B, 3, H, W), ``data_samples`` as given (on the
            device, metainfo completed) or None.
        """
        data = self.cast_data(data)
        images = list(data['inputs'])
        data_samples: Optional[List[CXRDataSample]] = data.get('data_samples')
        for i, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 1:
                raise ValueError(f'CXRDataPreprocessor: inputs[{i}] must have shape (1, H, W) '
                                 f'(one grey channel), got {tuple(image.shape)}')
        # (1, H, W) -> (3, H, W): broadcasting against the (3, 1, 1) mean repeats the channel
        images = [(image.float() - self.mean) / self.std for image in images]
        inputs = stack_batch(images, self.pad_size_divisor, self.pad_value)
        if data_samples is not None:
            if len(data_samples) != len(images):
                raise ValueError(f'CXRDataPreprocessor: {len(images)} inputs but '
                                 f'{len(data_samples)} data_samples')
            batch_pair(data_samples)
            batch_input_shape = tuple(inputs.shape[-2:])
            divisor = self.pad_size_divisor
            for sample, image in zip(data_samples, images):
                pad_shape = tuple(math.ceil(s / divisor) * divisor for s in image.shape[-2:])
                sample.set_metainfo(
                    dict(batch_input_shape=batch_input_shape, pad_shape=pad_shape))
        return dict(inputs=inputs, data_samples=data_samples)
