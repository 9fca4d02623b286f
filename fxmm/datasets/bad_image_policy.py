"""What a training dataset does with an image that fails to load: skip it, count, and stop
past a limit, so one corrupt file among millions does not end a three-day run."""
import logging

import torch
from mmengine.logging import print_log

from .image_io import CXRImageError


class BadImageLimitError(RuntimeError):
    """More images of a dataset failed to load than its ``max_bad_images`` allows."""


class BadImagePolicy:
    """Count the images a dataset skipped and raise once there are too many.

    :class:`~fxmm.datasets.CXRDataset` calls :meth:`record` when its pipeline raises
    :class:`~fxmm.datasets.image_io.CXRImageError` (a file missing, undecodable, or of
    another size than its annotation) for a training sample, then returns None, so that
    mmengine's ``BaseDataset.__getitem__`` fetches another random sample of the *same*
    dataset (a batch keeps its single (dataset, task) pair).

    The count lives in shared memory, so the DataLoader workers of one process add to one
    count, which also survives workers being restarted every epoch. It is *per process*:
    with DDP every rank counts (and stops at the limit) on its own, and it starts again
    from 0 when a run is resumed. Concurrent failures in two workers may lose an
    increment; the count is exact enough to stop a run whose data is broken.

    Args:
        max_bad_images (int): images that may be skipped; the next failure raises
            :class:`BadImageLimitError`. 0 makes every failure an error.
        dataset_name (str): how messages name the dataset (e.g. its annotation file).
    """

    def __init__(self, max_bad_images: int, dataset_name: str) -> None:
        if isinstance(max_bad_images, bool) or not isinstance(max_bad_images, int) or \
                max_bad_images < 0:
            raise ValueError(f'max_bad_images must be an int >= 0, got {max_bad_images!r}')
        self.max_bad_images = max_bad_images
        self.dataset_name = dataset_name
        self._count = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def count(self) -> int:
        """int: the images skipped so far by this process and its DataLoader workers."""
        return int(self._count.item())

    def record(self, error: CXRImageError) -> None:
        """Count one image that failed to load; warn, or raise past the limit.

        Args:
            error (CXRImageError): the failure, naming the file and the reason.

        Raises:
            BadImageLimitError: when this is failure number ``max_bad_images + 1``.
        """
        self._count += 1
        count = self.count
        if count > self.max_bad_images:
            raise BadImageLimitError(
                f'{self.dataset_name}: {count} images failed to load, more than '
                f'max_bad_images={self.max_bad_images}; the last: {error}. Check data_root '
                'and the image files (or raise max_bad_images).') from error
        print_log(f'{self.dataset_name}: skipped a training image ({count} of at most '
                  f'{self.max_bad_images}): {error}', logger='current', level=logging.WARNING)
