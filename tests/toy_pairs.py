"""A toy (dataset, task) pair for real-Runner tests of the cyclic loop and its hooks
(tests/test_engine/). Importable from every test (the root conftest puts tests/ on
``sys.path``)."""
from functools import partial

import torch
from mmengine.dataset import BaseDataset

from fxmm.registry import DATASETS
from fxmm.structures import CXRDataSample


def pack(results: dict, divisor: float) -> dict:
    """Inputs ``(value / divisor, 1)`` and a regression target in [-0.5, 0.5)."""
    value = float(results['value'])
    return dict(inputs=torch.tensor([value / divisor, 1.0]),
                data_samples=CXRDataSample(metainfo=dict(target=(value % 7) / 7 - 0.5)))


@DATASETS.register_module(force=True)
class ToyPairDataset(BaseDataset):
    """``num_samples`` values ``start, start + 1, ...`` of dataset ``name``, packed by
    :func:`pack`; ``loaded`` counts the samples every instance prepared."""
    loaded = 0

    def __init__(self, num_samples: int, name: str, start: int, divisor: float = 1.,
                 **kwargs):
        self.num_samples, self.name, self.start = num_samples, name, start
        super().__init__(pipeline=[partial(pack, divisor=divisor)], serialize_data=False,
                         **kwargs)

    def load_data_list(self):
        self._metainfo['dataset'] = self.name
        return [dict(value=self.start + i) for i in range(self.num_samples)]

    def prepare_data(self, idx):
        type(self).loaded += 1
        return super().prepare_data(idx)
