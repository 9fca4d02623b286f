"""Tests of the geometric transforms: image, boxes and per-class masks move together, and a
horizontal flip swaps left/right classes in every label kind."""
import copy

import numpy as np
import pytest
from mmcv.transforms.utils import cache_random_params

from fxmm.datasets.transforms.flip import CXRRandomFlip
from fxmm.datasets.transforms.geometric import (CXRRandomResizedCrop, CXRRandomRotate,
                                                CXRResize)
from fxmm.registry import TRANSFORMS
from fxmm.structures.laterality import is_lateral, lr_permutation, normalise_lr_pairs

H, W = 24, 32
SEG_CLASSES = ['left_lung', 'right_lung', 'heart']
DET_CLASSES = ['Nodule', 'Left Lung', 'Right Lung']
CLS_CLASSES = ['Cardiomegaly', 'Left Effusion', 'Right Effusion']
LR_PAIRS = [['left_lung', 'right_lung'], ['Left Lung', 'Right Lung'],
            ['Left Effusion', 'Right Effusion']]


def mask_bbox(mask):
    """The xyxy box (pixel edges) of a binary (H, W) mask."""
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def make_results(rect=(12, 8, 20, 16), channels=None, with_lists=True):
    """A (H, W) image with one rectangle drawn in every label kind.

    The rectangle (x1, y1, x2, y2 in pixel edges) is mask channel 2 ('heart') and box 0
    ('Nodule'); the image is a horizontal ramp plus the rectangle.
    """
    x1, y1, x2, y2 = rect
    img = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    img[y1:y2, x1:x2] += 2
    if channels is not None:
        img = np.repeat(img[..., None], channels, axis=2)
    masks = np.zeros((3, H, W), dtype=np.uint8)
    masks[2, y1:y2, x1:x2] = 1
    results = dict(img=img, ori_shape=(H, W), img_shape=(H, W),
                   gt_bboxes=np.array([rect], dtype=np.float32),
                   gt_bboxes_labels=np.array([0], dtype=np.int64), gt_seg_masks=masks,
                   gt_cls_label=np.array([1., 0., np.nan], dtype=np.float32))
    if with_lists:
        results.update(cls_classes=CLS_CLASSES, det_classes=DET_CLASSES,
                       seg_classes=SEG_CLASSES)
    return results


@pytest.mark.parametrize('cfg', [
    dict(type='CXRResize', scale=16), dict(type='CXRRandomResizedCrop', scale=(16, 8)),
    dict(type='CXRRandomRotate'), dict(type='CXRRandomFlip', lr_pairs=LR_PAIRS)])
def test_built_from_registry(cfg):
    transform = TRANSFORMS.build(cfg)
    assert type(transform).__name__ == cfg['type']
    assert type(transform).__name__ in repr(transform)


# ---------------------------------------------------------------------------- CXRResize
@pytest.mark.parametrize('channels', [None, 1, 3])
def test_resize_fixed_size_moves_boxes_with_masks(channels):
    out = CXRResize(scale=(48, 20))(make_results(channels=channels))
    expected_img_shape = (20, 48) if channels is None else (20, 48, channels)
    assert out['img'].shape == expected_img_shape and out['img'].dtype == np.float32
    assert out['gt_seg_masks'].shape == (3, 20, 48) and out['gt_seg_masks'].dtype == np.uint8
    assert out['img_shape'] == (20, 48) and out['ori_shape'] == (H, W)
    assert out['scale_factor'] == pytest.approx((1.5, 20 / 24))
    # box (12, 8, 20, 16) scaled by (1.5, 5/6)
    np.testing.assert_allclose(out['gt_bboxes'], [[18, 8 * 20 / 24, 30, 16 * 20 / 24]],
                               rtol=1e-6)
    # pixel-centre aligned nearest neighbour: the mask's edges are within half a pixel
    np.testing.assert_allclose(mask_bbox(out['gt_seg_masks'][2]), out['gt_bboxes'][0],
                               atol=0.5)


def test_resize_composes_scale_factor_and_keeps_ratio():
    results = CXRResize(scale=(64, 48))(make_results())
    assert results['scale_factor'] == pytest.approx((2., 2.))
    results = CXRResize(scale=(16, 48))(results)
    assert results['scale_factor'] == pytest.approx((0.5, 2.))
    assert results['ori_shape'] == (H, W)
    # boxes are always the original boxes times the composed factor
    np.testing.assert_allclose(results['gt_bboxes'], [[6, 16, 10, 32]])

    kept = CXRResize(scale=64, keep_ratio=True)(make_results())
    assert kept['img'].shape == (48, 64) and kept['scale_factor'] == pytest.approx((2., 2.))
    # long edge <= 40 and short edge <= 15: the short edge binds, factor 15 / 24
    kept = CXRResize(scale=(40, 15), keep_ratio=True)(make_results())
    assert kept['img'].shape == (15, 20)


def test_resize_rejects_bad_input():
    with pytest.raises(ValueError, match='scale'):
        CXRResize(scale=(16, 0))
    with pytest.raises(ValueError, match='interpolation'):
        CXRResize(scale=16, interpolation='cubic-ish')
    bad = make_results()
    bad['gt_seg_masks'] = bad['gt_seg_masks'][:, :-1]
    with pytest.raises(ValueError, match=r"gt_seg_masks.*\(K, 24, 32\)"):
        CXRResize(scale=16)(bad)
    bad = make_results()
    bad['gt_bboxes_labels'] = np.array([0, 1])
    with pytest.raises(ValueError, match='gt_bboxes_labels.*2 entries'):
        CXRResize(scale=16)(bad)


# ------------------------------------------------------------------ CXRRandomResizedCrop
def test_random_resized_crop_fixed_size_and_boxes_follow_masks():
    np.random.seed(0)
    crop = CXRRandomResizedCrop(scale=(40, 30))
    for _ in range(8):
        out = crop(make_results())
        assert out['img'].shape == (30, 40) and out['gt_seg_masks'].shape == (3, 30, 40)
        assert out['img_shape'] == (30, 40)
        # the central rectangle survives every crop of >= 80% of the area
        assert out['gt_bboxes_labels'].tolist() == [0]
        np.testing.assert_allclose(mask_bbox(out['gt_seg_masks'][2]), out['gt_bboxes'][0],
                                   atol=1)
        np.testing.assert_allclose(mask_bbox(out['img'] > 1.5), out['gt_bboxes'][0], atol=1)
        w_scale, h_scale = out['scale_factor']
        assert 40 / W <= w_scale <= 40 / (W * 0.8 * 0.75) ** 0.5 * 1.05
        assert 30 / H <= h_scale


def test_random_resized_crop_samples_within_ranges():
    np.random.seed(1)
    crop = CXRRandomResizedCrop(scale=8)
    for _ in range(100):
        x0, y0, cw, ch = crop.sample_crop(80, 100)
        assert 0 <= x0 and x0 + cw <= 100 and 0 <= y0 and y0 + ch <= 80
        assert 0.8 * 8000 - 100 <= cw * ch <= 8000
        assert 0.75 - 0.03 <= cw / ch <= 4 / 3 + 0.03
    # no crop of >= 90% of a square has width/height in [3, 4]: central fallback, ratio 3
    fallback = CXRRandomResizedCrop(scale=8, area_range=(0.9, 1.), ratio_range=(3., 4.))
    assert fallback.sample_crop(60, 60) == (0, 20, 60, 20)


def test_random_resized_crop_drops_hidden_boxes_with_their_labels():
    results = dict(
        img=np.zeros((40, 40), dtype=np.float32),
        gt_bboxes=np.array([[12, 12, 18, 18],    # inside the crop
                            [0, 0, 14, 14],      # 16/196 visible
                            [24, 15, 34, 25],    # 60% visible
                            [35, 35, 39, 39]],   # outside
                           dtype=np.float32),
        gt_bboxes_labels=np.array([0, 1, 2, 3], dtype=np.int64))
    crop = CXRRandomResizedCrop(scale=40)
    crop.sample_crop = lambda h, w: (10, 10, 20, 20)
    out = crop(copy.deepcopy(results))
    assert out['gt_bboxes_labels'].tolist() == [0, 2]
    # shifted by (10, 10), clipped to the 20x20 crop, scaled x2
    np.testing.assert_allclose(out['gt_bboxes'], [[4, 4, 16, 16], [28, 10, 40, 30]])
    assert out['scale_factor'] == (2., 2.)

    strict = CXRRandomResizedCrop(scale=40, min_box_visibility=0.7)
    strict.sample_crop = lambda h, w: (10, 10, 20, 20)
    assert strict(copy.deepcopy(results))['gt_bboxes_labels'].tolist() == [0]


def test_random_transforms_reproducible_from_numpy_seed():
    def crops(seed):
        np.random.seed(seed)
        crop = CXRRandomResizedCrop(scale=(16, 16), area_range=(0.3, 1.))
        return [crop.sample_crop(H, W) for _ in range(5)]

    assert crops(3) == crops(3)
    assert crops(3) != crops(4)

    np.random.seed(3)
    first = CXRRandomRotate()(make_results())
    np.random.seed(3)
    second = CXRRandomRotate()(make_results())
    np.testing.assert_array_equal(first['img'], second['img'])
    np.testing.assert_array_equal(first['gt_bboxes'], second['gt_bboxes'])

    crop = CXRRandomResizedCrop(scale=16, area_range=(0.3, 1.))
    with cache_random_params(crop):
        assert crop.sample_crop(H, W) == crop.sample_crop(H, W)


# ---------------------------------------------------------------------- CXRRandomRotate
def test_rotate_boxes_follow_masks():
    np.random.seed(0)
    rotate = CXRRandomRotate(max_angle=7.)
    for _ in range(4):
        out = rotate(make_results(rect=(4, 3, 14, 9)))    # off-centre, so the sign matters
        assert out['img'].shape == (H, W) and out['gt_seg_masks'].shape == (3, H, W)
        # the rotated rectangle touches its enclosing box, up to nearest-neighbour rounding
        np.testing.assert_allclose(mask_bbox(out['gt_seg_masks'][2]), out['gt_bboxes'][0],
                                   atol=1)
        np.testing.assert_allclose(mask_bbox(out['img'] > 1.5), out['gt_bboxes'][0], atol=1)


def test_rotate_direction_enlargement_border_and_dropped_boxes():
    results = make_results(rect=(2, 4, 6, 10), channels=3)
    results.update(img=np.ones((16, 16, 3), dtype=np.float32),
                   gt_seg_masks=results['gt_seg_masks'][:, :16, :16],
                   gt_bboxes=np.array([[2, 4, 6, 10], [0, 0, 1, 1]], dtype=np.float32),
                   gt_bboxes_labels=np.array([3, 5], dtype=np.int64))
    rotate = CXRRandomRotate(border_value=-1.)
    rotate.sample_angle = lambda: 90.
    out = rotate(copy.deepcopy(results))
    # clockwise on screen about the centre (8, 8): x in [2, 6], y in [4, 10] -> x in [6, 12],
    # y in [2, 6]; the top-left corner goes to the top-right corner
    np.testing.assert_allclose(out['gt_bboxes'], [[6, 2, 12, 6], [15, 0, 16, 1]], atol=1e-4)
    np.testing.assert_array_equal(mask_bbox(out['gt_seg_masks'][2]), [6, 2, 12, 6])
    assert out['gt_bboxes_labels'].tolist() == [3, 5]
    assert out['img'].shape == (16, 16, 3)

    rotate.sample_angle = lambda: 45.
    out = rotate(copy.deepcopy(results))
    assert out['img'][0, 0].tolist() == [-1.] * 3    # outside the rotated image
    assert out['gt_bboxes_labels'].tolist() == [3]    # the corner box left the image
    box = out['gt_bboxes'][0]
    # a 4x6 box at 45 degrees is enclosed by a (4+6)/sqrt(2) square: larger than the box
    np.testing.assert_allclose(box[2:] - box[:2], [10 / 2 ** 0.5] * 2, atol=1e-4)

    untouched = CXRRandomRotate(prob=0.)(copy.deepcopy(results))
    np.testing.assert_array_equal(untouched['img'], results['img'])
    np.testing.assert_array_equal(untouched['gt_bboxes'], results['gt_bboxes'])


# ------------------------------------------------------------------------ CXRRandomFlip
def test_is_lateral():
    lateral = ['Left Lung', 'right_clavicle', 'RightLung', 'LEFT_LUNG', 'R1', 'L10', 'rib_r3']
    plain = ['Lung', 'Bright spot', 'Leftover', 'Lung Lesion', 'Nodule/Mass', 'Cardiomegaly',
             'ActiveTuberculosis', 'No Lung Opacity/Not Normal', 'Pleural Thickening']
    assert [is_lateral(n) for n in lateral] == [True] * len(lateral)
    assert [is_lateral(n) for n in plain] == [False] * len(plain)


def test_horizontal_flip_relabels_the_mirrored_side():
    """The patient's right lung lies on the image's left; mirrored, those pixels are on the
    image's right and are the (mirrored) patient's LEFT lung."""
    results = make_results()
    masks = np.zeros((3, H, W), dtype=np.uint8)
    masks[1, 4:20, 2:10] = 1      # right_lung, image left
    masks[0, 6:18, 22:30] = 1     # left_lung, image right (smaller, so the two differ)
    masks[2, 10:20, 12:20] = 1    # heart
    results.update(gt_seg_masks=masks, lr_pairs=LR_PAIRS,
                   gt_bboxes=np.array([[2, 4, 10, 20], [22, 6, 30, 18], [12, 10, 20, 20]],
                                      dtype=np.float32),
                   gt_bboxes_labels=np.array([2, 1, 0], dtype=np.int64))  # R, L lung, nodule
    flip = CXRRandomFlip(prob=1.)
    out = flip(copy.deepcopy(results))
    assert out['flip'] is True and out['flip_direction'] == 'horizontal'
    left, right, heart = (out['gt_seg_masks'][SEG_CLASSES.index(n)] for n in SEG_CLASSES)
    # the former right lung moved to the image's right (columns 32-10..32-2) as 'left_lung'
    assert left[4:20, 22:30].all() and left.sum() == 16 * 8
    assert right[6:18, 2:10].all() and right.sum() == 12 * 8
    np.testing.assert_array_equal(heart, masks[2, :, ::-1])
    np.testing.assert_array_equal(out['img'], results['img'][:, ::-1])
    # boxes mirror and their lung labels swap: each box still frames its mask
    np.testing.assert_allclose(out['gt_bboxes'], [[22, 4, 30, 20], [2, 6, 10, 18],
                                                  [12, 10, 20, 20]])
    assert out['gt_bboxes_labels'].tolist() == [1, 2, 0]    # Left Lung, Right Lung, Nodule
    np.testing.assert_array_equal(mask_bbox(left), out['gt_bboxes'][0])
    np.testing.assert_array_equal(mask_bbox(right), out['gt_bboxes'][1])
    # image-level labels: [Cardiomegaly, Left Effusion, Right Effusion] = [1, 0, nan]
    np.testing.assert_array_equal(out['gt_cls_label'], [1., np.nan, 0.])

    kept = CXRRandomFlip(prob=0.)(copy.deepcopy(results))
    assert kept['flip'] is False and kept['flip_direction'] is None
    np.testing.assert_array_equal(kept['gt_seg_masks'], masks)


def test_flip_refuses_lateral_classes_without_pairs():
    with pytest.raises(ValueError, match=r"seg_classes: \['left_lung', 'right_lung'\]"):
        CXRRandomFlip(prob=0.)(make_results())    # refused even when not flipping
    partial = make_results()
    partial['lr_pairs'] = LR_PAIRS[:2]
    with pytest.raises(ValueError, match=r"cls_classes: \['Left Effusion', 'Right Effusion'\]"):
        CXRRandomFlip(prob=1.)(partial)
    # a paired class whose partner is missing from the list is refused as well
    one_sided = dict(img=np.zeros((4, 4), np.float32), det_classes=['Left Lung', 'Heart'],
                     lr_pairs=LR_PAIRS)
    with pytest.raises(ValueError, match=r"det_classes: \['Left Lung'\]"):
        CXRRandomFlip(prob=1.)(one_sided)
    no_lists = make_results(with_lists=False)
    with pytest.raises(ValueError, match="'gt_cls_label' but no 'cls_classes'"):
        CXRRandomFlip(prob=1.)(no_lists)
    # vertical flips do not swap sides, so they need no pairs
    assert CXRRandomFlip(prob=1., direction='vertical')(make_results())['flip']

    allowed = CXRRandomFlip(prob=1., allow_laterality_without_pairs=True)(make_results())
    np.testing.assert_array_equal(allowed['gt_cls_label'], [1., 0., np.nan])
    np.testing.assert_array_equal(allowed['gt_seg_masks'],
                                  make_results()['gt_seg_masks'][..., ::-1])


def test_flip_pairs_argument_overrides_metainfo_and_is_validated():
    ribs = [f'R{i}' for i in range(1, 4)] + [f'L{i}' for i in range(1, 4)]
    masks = np.arange(6, dtype=np.uint8)[:, None, None] * np.ones((6, 4, 4), np.uint8)
    results = dict(img=np.zeros((4, 4), np.float32), seg_classes=ribs, gt_seg_masks=masks,
                   lr_pairs=[['L1', 'R1']])
    flip = CXRRandomFlip(prob=1., lr_pairs=[[f'L{i}', f'R{i}'] for i in range(1, 4)])
    out = flip(copy.deepcopy(results))
    assert out['gt_seg_masks'][:, 0, 0].tolist() == [3, 4, 5, 0, 1, 2]
    with pytest.raises(ValueError, match=r"\['R2', 'R3', 'L2', 'L3'\]"):
        CXRRandomFlip(prob=1.)(copy.deepcopy(results))

    assert lr_permutation(('a', 'L', 'R'), (('L', 'R'), )) == ((0, 2, 1), ())
    with pytest.raises(ValueError, match='appears in more than one pair'):
        normalise_lr_pairs([['L1', 'R1'], ['L1', 'R2']], 'lr_pairs')
    with pytest.raises(ValueError, match='two different class names'):
        CXRRandomFlip(lr_pairs=[['L1', 'L1']])
    with pytest.raises(ValueError, match='direction'):
        CXRRandomFlip(direction='sideways')


@pytest.mark.parametrize('direction, box, cls_label', [
    ('horizontal', [W - 6, 3, W - 2, 9], [1., np.nan, 0.]),
    ('vertical', [2, H - 9, 6, H - 3], [1., 0., np.nan]),      # no side swap
    ('diagonal', [W - 6, H - 9, W - 2, H - 3], [1., np.nan, 0.])])
def test_flip_directions_move_boxes_with_masks(direction, box, cls_label):
    results = make_results(rect=(2, 3, 6, 9))
    results['lr_pairs'] = LR_PAIRS
    out = CXRRandomFlip(prob=1., direction=direction)(results)
    assert out['flip_direction'] == direction
    np.testing.assert_array_equal(out['gt_bboxes'], [box])
    np.testing.assert_array_equal(mask_bbox(out['gt_seg_masks'][2]), box)
    np.testing.assert_array_equal(out['gt_cls_label'], cls_label)


def test_flip_decisions_reproducible_from_numpy_seed():
    def decisions(seed):
        np.random.seed(seed)
        flip = CXRRandomFlip(prob=0.5, lr_pairs=LR_PAIRS)
        return [flip(make_results())['flip'] for _ in range(16)]

    assert decisions(0) == decisions(0)
    assert 0 < sum(decisions(0)) < 16
    assert decisions(0) != decisions(1)


@pytest.mark.parametrize('transform', [
    CXRResize(scale=(16, 12)), CXRRandomResizedCrop(scale=(16, 12)), CXRRandomRotate(),
    CXRRandomFlip(prob=1., lr_pairs=LR_PAIRS)])
def test_empty_annotations_pass_through(transform):
    results = make_results()
    results.update(gt_bboxes=np.zeros((0, 4), np.float32),
                   gt_bboxes_labels=np.zeros((0, ), np.int64),
                   gt_seg_masks=np.zeros((0, H, W), np.uint8), seg_classes=[])
    out = transform(results)
    h, w = out['img'].shape
    assert out['gt_bboxes'].shape == (0, 4) and out['gt_bboxes_labels'].shape == (0, )
    assert out['gt_seg_masks'].shape == (0, h, w)
