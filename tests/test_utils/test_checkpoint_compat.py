"""mmengine checkpoints (with their message hub) load under torch's weights_only default."""
import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import load_checkpoint as mmengine_load

import fxmm  # noqa: F401  (installs the allow-list)


def _checkpoint():
    buf = HistoryBuffer()
    buf.update(0.5)
    return {
        'meta': {'seed': 3, 'epoch': 1},
        'state_dict': {'weight': torch.ones(2)},
        'message_hub': {'log_scalars': {'train/loss': buf},
                        'runtime_info': {'iter': np.int64(4), 'arr': np.arange(3.)}},
    }


def test_mmengine_meta_loads_with_weights_only(tmp_path):
    path = tmp_path / 'iter_4.pth'
    torch.save(_checkpoint(), path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 0.5
    assert ckpt['message_hub']['runtime_info']['iter'] == 4
    np.testing.assert_array_equal(ckpt['message_hub']['runtime_info']['arr'], [0., 1., 2.])


def test_mmengine_loader_uses_allow_list(tmp_path):
    path = tmp_path / 'ckpt.pth'
    torch.save(_checkpoint(), path)
    model = torch.nn.Module()
    model.register_parameter('weight', torch.nn.Parameter(torch.zeros(2)))
    mmengine_load(model, str(path))
    assert torch.equal(model.weight.data, torch.ones(2))


class _Evil:
    def __reduce__(self):
        return (print, ('pwned',))


def test_other_objects_are_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Evil()}, path)
    with pytest.raises(Exception, match='weights_only|Unsupported global'):
        torch.load(path, weights_only=True)
