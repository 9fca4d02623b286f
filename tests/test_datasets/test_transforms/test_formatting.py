import numpy as np
import pytest
import torch

from fxmm.datasets.transforms.formatting import DEFAULT_META_KEYS, PackCXRInputs
from fxmm.registry import TRANSFORMS
from fxmm.structures import CXRDataSample

H, W = 16, 20


def _results():
    rng = np.random.default_rng(0)
    masks = (rng.random((2, H, W)) > 0.5).astype(np.uint8)
    return dict(
        img=rng.random((H, W)).astype(np.float32),
        gt_cls_label=np.array([1, -1, np.nan], dtype=np.float32),
        gt_bboxes=np.array([[1, 2, 5, 7], [0, 0, 20, 16]], dtype=np.float32),
        gt_bboxes_labels=np.array([0, 1], dtype=np.int64),
        gt_seg_masks=masks,
        dataset='toy', task='seg', img_path='a.png', ori_shape=(H, W), img_shape=(H, W),
        sample_idx=3, height=H, width=W, seg={})


def test_packs_every_field_with_design_types():
    results = _results()
    packed = PackCXRInputs()(results)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.float32 and inputs.shape == (1, H, W)
    np.testing.assert_array_equal(inputs[0].numpy(), results['img'])
    assert isinstance(sample, CXRDataSample)
    assert sample.gt_cls.label.dtype == torch.float32
    assert torch.equal(sample.gt_cls.label[:2], torch.tensor([1.0, -1.0]))
    assert torch.isnan(sample.gt_cls.label[2])
    assert sample.gt_instances.bboxes.dtype == torch.float32
    assert sample.gt_instances.bboxes.tolist() == [[1, 2, 5, 7], [0, 0, 20, 16]]
    assert sample.gt_instances.labels.dtype == torch.int64
    assert sample.gt_instances.labels.tolist() == [0, 1]
    assert sample.gt_seg_masks.data.dtype == torch.uint8
    assert torch.equal(sample.gt_seg_masks.data, torch.from_numpy(results['gt_seg_masks']))
    assert sample.metainfo == dict(dataset='toy', task='seg', img_path='a.png',
                                   ori_shape=(H, W), img_shape=(H, W), sample_idx=3,
                                   flip=False, scale_factor=(1.0, 1.0))


def test_multichannel_and_non_contiguous_image():
    img = np.arange(H * W * 3, dtype=np.float64).reshape(H, W, 3)[:, ::-1]
    packed = PackCXRInputs()(dict(img=img))
    assert packed['inputs'].dtype == torch.float32 and packed['inputs'].shape == (3, H, W)
    np.testing.assert_array_equal(packed['inputs'].numpy(), img.transpose(2, 0, 1))
    with pytest.raises(ValueError, match=r'\(H, W\) or \(H, W, C\)'):
        PackCXRInputs()(dict(img=np.zeros((1, 2, 3, 4))))


def test_only_present_fields_are_packed():
    packed = PackCXRInputs()(dict(gt_cls_label=np.zeros(2, np.float32), task='cls',
                                  flip=True, scale_factor=(0.5, 0.5)))
    sample = packed['data_samples']
    assert 'inputs' not in packed
    assert 'gt_cls' in sample and 'gt_instances' not in sample
    assert 'gt_seg_masks' not in sample
    assert sample.metainfo == dict(task='cls', flip=True, scale_factor=(0.5, 0.5))


def test_empty_annotations():
    packed = PackCXRInputs()(dict(
        img=np.zeros((H, W), np.float32), gt_cls_label=np.zeros(0, np.float32),
        gt_bboxes=np.zeros((0, 4), np.float32), gt_bboxes_labels=np.zeros(0, np.int64),
        gt_seg_masks=np.zeros((0, H, W), np.uint8)))
    sample = packed['data_samples']
    assert sample.gt_instances.bboxes.shape == (0, 4)
    assert sample.gt_instances.labels.shape == (0,)
    assert sample.gt_seg_masks.data.shape == (0, H, W)
    assert sample.gt_cls.label.shape == (0,)


def test_boxes_need_labels():
    with pytest.raises(KeyError, match='gt_bboxes_labels'):
        PackCXRInputs()(dict(gt_bboxes=np.zeros((1, 4), np.float32)))


def test_meta_keys_and_registry():
    transform = TRANSFORMS.build(dict(type='PackCXRInputs', meta_keys=('task', 'img_path')))
    sample = transform(_results())['data_samples']
    assert sample.metainfo == dict(task='seg', img_path='a.png')
    assert 'flip' in DEFAULT_META_KEYS and 'dataset' in DEFAULT_META_KEYS
    assert repr(transform) == "PackCXRInputs(meta_keys=('task', 'img_path'))"
