"""Tests of CXRDataPreprocessor: grey -> 3 channels, normalisation, padding, one pair per batch."""
import pytest
import torch
from mmengine.registry import DefaultScope

from fxmm.models.data_preprocessors.cxr_data_preprocessor import CXRDataPreprocessor
from fxmm.registry import MODELS
from fxmm.testing._utils import demo_cxr_inputs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.fixture(autouse=True)
def fxmm_default_scope():
    """Build in fxmm's scope, as a config with ``default_scope = 'fxmm'`` does."""
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


def test_repeats_grey_channel_and_normalises_per_channel():
    preprocessor = MODELS.build(dict(type='CXRDataPreprocessor'))
    data = demo_cxr_inputs(batch_size=2, size=64, task='cls', dataset='nih', seed=3)
    data['inputs'][0] = torch.full((1, 64, 64), 0.5)
    out = preprocessor(data)
    inputs = out['inputs']
    assert inputs.shape == (2, 3, 64, 64) and inputs.dtype == torch.float32
    # a constant 0.5 image becomes (0.5 - mean_c) / std_c in channel c, by hand:
    for c, expected in enumerate([0.06550218, 0.19642857, 0.41777778]):
        assert torch.allclose(inputs[0, c], torch.full((64, 64), expected), atol=1e-6)
    raw = data['inputs'][1][0]
    for c in range(3):
        assert torch.allclose(inputs[1, c], (raw - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    for sample in out['data_samples']:
        assert sample.batch_input_shape == (64, 64) and sample.pad_shape == (64, 64)


def test_pads_mixed_sizes_to_the_divisor_bottom_right():
    preprocessor = CXRDataPreprocessor(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    small = demo_cxr_inputs(1, (40, 50), 'seg', 'jsrt', seed=1)
    large = demo_cxr_inputs(1, (64, 70), 'seg', 'jsrt', seed=2)
    data = dict(inputs=small['inputs'] + large['inputs'],
                data_samples=small['data_samples'] + large['data_samples'])
    out = preprocessor(data)
    inputs = out['inputs']
    assert inputs.shape == (2, 3, 64, 96)
    expected = ((small['inputs'][0] - 0.5) / 0.25).expand(3, -1, -1)
    assert torch.allclose(inputs[0, :, :40, :50], expected)
    assert torch.all(inputs[0, :, 40:, :] == 0) and torch.all(inputs[0, :, :, 50:] == 0)
    assert torch.all(inputs[1, :, :, 70:] == 0)
    first, second = out['data_samples']
    assert first.batch_input_shape == second.batch_input_shape == (64, 96)
    assert first.pad_shape == (64, 64) and second.pad_shape == (64, 96)
    assert first.img_shape == (40, 50)  # left as the pipeline set it


def test_equal_sizes_are_padded_only_off_the_divisor_grid():
    preprocessor = CXRDataPreprocessor(pad_size_divisor=32)
    assert preprocessor(demo_cxr_inputs(2, 96))['inputs'].shape == (2, 3, 96, 96)
    assert preprocessor(demo_cxr_inputs(2, 100))['inputs'].shape == (2, 3, 128, 128)
    unpadded = CXRDataPreprocessor(pad_size_divisor=1)
    assert unpadded(demo_cxr_inputs(2, 100))['inputs'].shape == (2, 3, 100, 100)


def test_rejects_batches_mixing_dataset_task_pairs():
    preprocessor = CXRDataPreprocessor()
    nih = demo_cxr_inputs(1, 64, 'cls', 'nih')
    siim = demo_cxr_inputs(1, 64, 'cls', 'siim', num_cls=1)
    mixed = dict(inputs=nih['inputs'] + siim['inputs'],
                 data_samples=nih['data_samples'] + siim['data_samples'])
    with pytest.raises(ValueError, match=r"\['nih.cls', 'siim.cls'\]"):
        preprocessor(mixed)
    seg = demo_cxr_inputs(1, 64, 'seg', 'siim', num_seg=1)
    mixed_task = dict(inputs=siim['inputs'] + seg['inputs'],
                      data_samples=siim['data_samples'] + seg['data_samples'])
    with pytest.raises(ValueError, match=r"\['siim.cls', 'siim.seg'\]"):
        preprocessor(mixed_task)


def test_rejects_bad_inputs_and_accepts_batches_without_samples():
    preprocessor = CXRDataPreprocessor()
    with pytest.raises(ValueError, match=r'inputs\[1\] must have shape \(1, H, W\).*\(3, 64, 64\)'):
        preprocessor(dict(inputs=[torch.rand(1, 64, 64), torch.rand(3, 64, 64)]))
    with pytest.raises(ValueError, match='2 inputs but 1 data_samples'):
        data = demo_cxr_inputs(2, 64)
        preprocessor(dict(inputs=data['inputs'], data_samples=data['data_samples'][:1]))
    with pytest.raises(ValueError, match='mean and std need 3 values'):
        CXRDataPreprocessor(mean=(0.5, ), std=(0.2, ))
    # a stacked (B, 1, H, W) tensor (default_collate), no data samples (tensor mode)
    out = preprocessor(dict(inputs=torch.zeros(2, 1, 32, 32)))
    assert out['inputs'].shape == (2, 3, 32, 32) and out['data_samples'] is None
    assert torch.allclose(out['inputs'][0, 2], torch.full((32, 32), -0.406 / 0.225))
