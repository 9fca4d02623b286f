"""Tests of the segmentation path: SharedUperNet, MultiDatasetSegHead, MultiLabelDiceLoss."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.registry import DefaultScope
from mmseg.models.decode_heads import UPerHead
from mmseg.models.losses import DiceLoss

from fxmm.models.heads.multi_seg_head import MultiDatasetSegHead
from fxmm.models.losses import MaskedBCEWithLogitsLoss, MultiLabelDiceLoss
from fxmm.models.necks.shared_upernet import SharedUperNet
from fxmm.structures.cxr_data_sample import CXRDataSample
from fxmm.testing._utils import demo_cxr_inputs

IN_CHANNELS = (8, 16, 32, 64)


@pytest.fixture(autouse=True)
def fxmm_default_scope():
    """Build in fxmm's scope, as a config with ``default_scope = 'fxmm'`` does."""
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


def stage_feats(batch: int, size: int, seed: int = 0) -> list:
    """Backbone-like maps (B, C_i, size / s_i, size / s_i), strides 4..32."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size // s, size // s, generator=gen)
            for c, s in zip(IN_CHANNELS, (4, 8, 16, 32))]


def test_dice_loss_per_image_and_class_matches_hand_value():
    # class 0: p = 0.5 everywhere, g = one pixel  -> 1 - (2*0.5 + 1) / (2 + 1 + 1) = 0.5
    # class 1: p = 0.75 everywhere, g = all ones  -> 1 - (2*3 + 1) / (3 + 4 + 1) = 0.125
    pred = torch.stack([torch.zeros(2, 2), torch.full((2, 2), math.log(3))])[None]
    target = torch.stack([torch.tensor([[1, 0], [0, 0]]), torch.ones(2, 2)])[None]
    loss = MultiLabelDiceLoss()(pred, target)
    assert loss.item() == pytest.approx((0.5 + 0.125) / 2)
    terms = MultiLabelDiceLoss(loss_weight=2.)(pred, target, reduction_override='none')
    assert torch.allclose(terms, torch.tensor([1.0, 0.25]))
    # mmseg's DiceLoss pools both classes into one Dice: 1 - (2*3.5 + 1) / (5 + 5 + 1)
    pooled = DiceLoss(naive_dice=True, eps=1., ignore_index=None)(pred, target)
    assert pooled.item() == pytest.approx(3 / 11)


def test_dice_loss_pushes_empty_masks_down_and_checks_shapes():
    pred = torch.zeros(1, 1, 4, 4, requires_grad=True)
    loss = MultiLabelDiceLoss()(pred, torch.zeros(1, 1, 4, 4))
    assert loss.item() == pytest.approx(1 - 1 / (16 * 0.5 + 1))
    loss.backward()
    assert torch.all(pred.grad > 0)  # gradient descent lowers every logit
    with pytest.raises(ValueError, match=r'\(N, K, H, W\).*\(1, 2, 4, 4\).*\(1, 1, 4, 4\)'):
        MultiLabelDiceLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))


def test_dice_loss_ignore_empty_averages_the_present_masks_only():
    # image 0: class 0 present (one pixel, p = 0.5: Dice loss 0.5 as above), class 1 empty;
    # image 1: both empty. Only the one present mask counts.
    pred = torch.zeros(2, 2, 2, 2, requires_grad=True)
    target = torch.zeros(2, 2, 2, 2)
    target[0, 0, 0, 0] = 1
    loss = MultiLabelDiceLoss(ignore_empty=True)(pred, target)
    assert loss.item() == pytest.approx(0.5)
    terms = MultiLabelDiceLoss(ignore_empty=True)(pred, target, reduction_override='none')
    assert terms.tolist() == pytest.approx([0.5, 0., 0., 0.])
    loss.backward()
    assert pred.grad[0, 1].abs().sum() == 0 and pred.grad[1].abs().sum() == 0
    assert pred.grad[0, 0, 0, 0] < 0  # the present pixel is pushed up
    # the default counts the empty masks: each 1 - 1 / (4 * 0.5 + 1) = 2/3
    assert MultiLabelDiceLoss()(pred, target).item() == pytest.approx((0.5 + 3 * 2 / 3) / 4)
    # nothing present: 0, still attached to the graph
    empty = MultiLabelDiceLoss(ignore_empty=True)(pred[1:], target[1:])
    assert empty.item() == 0. and empty.requires_grad


def test_shared_upernet_is_uperhead_without_classifier():
    neck = SharedUperNet(in_channels=IN_CHANNELS, channels=16)
    out = neck(stage_feats(2, 64))
    assert out.shape == (2, 16, 16, 16)
    names = [n for n, _ in neck.named_parameters()]
    assert not any('conv_seg' in n for n in names)
    with DefaultScope.overwrite_default_scope('mmseg'):
        reference = UPerHead(in_channels=list(IN_CHANNELS), in_index=[0, 1, 2, 3],
                             channels=16, num_classes=3, norm_cfg=dict(type='BN'))
    conv_seg = sum(p.numel() for p in reference.conv_seg.parameters())
    assert sum(p.numel() for p in neck.parameters()) == sum(
        p.numel() for p in reference.parameters()) - conv_seg
    with pytest.raises(ValueError, match='expects 4 feature maps'):
        neck(stage_feats(2, 64)[:3])


def test_seg_head_modules_and_forward_shapes():
    head = MultiDatasetSegHead(in_channels=16, dataset_classes=dict(siim=1, jsrt=3),
                               mid_channels=8)
    assert isinstance(head.heads['jsrt'][0], ConvModule)
    assert head.heads['jsrt'][1].out_channels == 3 and head.heads['siim'][1].out_channels == 1
    x = torch.randn(2, 16, 16, 16)
    assert head(x, 'jsrt', (64, 64)).shape == (2, 3, 64, 64)
    plain = MultiDatasetSegHead(in_channels=16, dataset_classes=dict(siim=1))
    assert len(plain.heads['siim']) == 1 and plain.heads['siim'][0].kernel_size == (1, 1)
    with pytest.raises(ValueError, match='dataset_classes is empty'):
        MultiDatasetSegHead(in_channels=16, dataset_classes={})


def test_seg_loss_is_mean_over_images_on_their_unpadded_area():
    head = MultiDatasetSegHead(
        in_channels=16, dataset_classes=dict(jsrt=2),
        loss_decode=[dict(type='MultiLabelDiceLoss'),
                     dict(type='MaskedBCEWithLogitsLoss', loss_weight=0.5)])
    # image 0 is 40 x 50 inside a 64 x 96 batch, image 1 fills it
    first = demo_cxr_inputs(1, (40, 50), 'seg', 'jsrt', num_seg=2, seed=1)['data_samples']
    second = demo_cxr_inputs(1, (64, 96), 'seg', 'jsrt', num_seg=2, seed=2)['data_samples']
    samples = first + second
    for sample in samples:
        sample.set_metainfo(dict(batch_input_shape=(64, 96)))
    x = torch.randn(2, 16, 16, 24)
    losses = head.loss(x, samples, 'jsrt')
    assert set(losses) == {'loss_dice', 'loss_bce'}
    logits = head(x, 'jsrt', (64, 96))
    gt0, gt1 = (s.gt_seg_masks.data[None].float() for s in samples)
    dice = MultiLabelDiceLoss()
    expected_dice = (dice(logits[:1, :, :40, :50], gt0) + dice(logits[1:], gt1)) / 2
    expected_bce = 0.5 * (F.binary_cross_entropy_with_logits(logits[:1, :, :40, :50], gt0)
                          + F.binary_cross_entropy_with_logits(logits[1:], gt1)) / 2
    assert torch.allclose(losses['loss_dice'], expected_dice)
    assert torch.allclose(losses['loss_bce'], expected_bce)
    samples[0].gt_seg_masks.data = samples[0].gt_seg_masks.data[:1]
    with pytest.raises(ValueError, match=r"'jsrt', data_samples\[0\].*\(1, 40, 50\).*2 seg"):
        head.loss(x, samples, 'jsrt')


def test_seg_predict_crops_padding_and_resizes_to_original():
    head = MultiDatasetSegHead(in_channels=16, dataset_classes=dict(siim=1, jsrt=3),
                               threshold=0.4).eval()
    sample = CXRDataSample(metainfo=dict(img_shape=(40, 64), ori_shape=(80, 100),
                                         batch_input_shape=(64, 64)))
    x = torch.randn(1, 16, 16, 16)
    with torch.no_grad():
        result, = head.predict(x, [sample], 'jsrt')
        logits = head(x, 'jsrt', (64, 64))
    expected = F.interpolate(logits[:, :, :40, :64], size=(80, 100), mode='bilinear').sigmoid()[0]
    assert result.score.shape == result.data.shape == (3, 80, 100)
    assert result.data.dtype == torch.bool
    assert torch.allclose(result.score, expected)
    assert torch.equal(result.data, expected > 0.4)


def test_masked_bce_is_shared_with_the_seg_head_as_plain_bce_on_masks():
    logits, masks = torch.randn(2, 3, 8, 8), (torch.rand(2, 3, 8, 8) > 0.5).float()
    assert torch.allclose(MaskedBCEWithLogitsLoss()(logits, masks),
                          F.binary_cross_entropy_with_logits(logits, masks))
