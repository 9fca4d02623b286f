"""Tests for the prepared image store: fxmm.datasets.image_store / prepare_store and the
loader reading it (same pixels, boxes and masks as the originals, up to resampling)."""
import copy
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from pydicom.data import get_testdata_file

from fxmm.datasets import CXRDataset
from fxmm.datasets.image_io import CXRImageError, read_cxr_image
from fxmm.datasets.image_store import PIXELS, RECORDS, ImageStore
from fxmm.datasets.prepare_store import prepare_images, reduced_size, to_unsigned
from fxmm.datasets.sample_rng import sample_rng
from fxmm.datasets.transforms import CXRResize, LoadCXRImage
from fxmm.structures.mask_rle import encode_mask
from fxmm.testing.dicom import write_grey_dicom

H, W = 90, 75  # the original images; stored at long side 30: (30, 25), scale 1/3
BOX = [15., 30., 45., 60.]  # x1, y1, x2, y2: the bright square of the image
SIDE = 30
CFG_TRAIN = [dict(type='LoadCXRImage', defer_norm=True), dict(type='LoadCXRAnnotations'),
             dict(type='CXRRandomResizedCrop', scale=24, area_range=(0.8, 1.0)),
             dict(type='PackCXRInputs')]
CFG_TEST = [dict(type='LoadCXRImage', defer_norm=True),
            dict(type='LoadCXRAnnotations', with_seg=False), dict(type='CXRResize', scale=24),
            dict(type='LoadCXRAnnotations', with_cls=False, with_bbox=False),
            dict(type='PackCXRInputs')]


def square_image(dtype=np.uint16, low=400, high=3000):
    """A smooth ramp with a bright square at BOX, (H, W)."""
    img = np.linspace(low, low + 300, W)[None, :].repeat(H, 0)
    x1, y1, x2, y2 = (int(v) for v in BOX)
    img[y1:y2, x1:x2] = high
    return img.astype(dtype)


@pytest.fixture
def data_root(tmp_path):
    """A data root with a 16-bit PNG, a MONOCHROME1 12-bit DICOM with a rescale, a small
    8-bit JPEG (kept whole) and a missing file, in one annotation file; the store."""
    root = tmp_path / 'root'
    (root / 'images').mkdir(parents=True)
    (root / 'annotations').mkdir()
    cv2.imwrite(str(root / 'images' / 'a.png'), square_image())
    write_grey_dicom(root / 'images' / 'b.dcm', 4095 - square_image(), 'MONOCHROME1',
                     bits_stored=12, RescaleSlope=2, RescaleIntercept=-10,
                     PixelSpacing=[0.2, 0.3])
    small = square_image(np.uint8, 20, 200)[:24, :20]
    cv2.imwrite(str(root / 'images' / 'c.jpg'), small)
    mask = np.zeros((H, W), np.uint8)
    mask[30:60, 15:45] = 1
    entries = [dict(img_path=f'images/{n}', height=H, width=W, cls_label=[1],
                    instances=[dict(bbox=BOX, bbox_label=0)], seg=dict(lesion=encode_mask(mask)))
               for n in ('a.png', 'b.dcm', 'missing.png')]
    entries.append(dict(img_path='images/c.jpg', height=24, width=20, cls_label=[0]))
    meta = dict(dataset='toy', tasks=['cls', 'loc', 'seg'], cls_classes=['x'],
                det_classes=['lesion'], seg_classes=['lesion'], converter_version=1)
    ann = root / 'annotations' / 'train.json'
    ann.write_text(json.dumps(dict(metainfo=meta, data_list=entries)))
    report = prepare_images([str(ann)], max_side=SIDE)
    return root, report


def dataset(root, pipeline, store=True, test_mode=False):
    return CXRDataset(ann_file='annotations/train.json', data_root=str(root), task='seg',
                      pipeline=copy.deepcopy(pipeline), test_mode=test_mode,
                      data_prefix=dict(img_path=f'prepared/{SIDE}/' if store else ''))


def test_prepare_reports_what_it_stored_and_skipped(data_root):
    root, report = data_root
    assert report['store'] == str(root / 'prepared' / str(SIDE))
    assert (report['images'], report['prepared'], report['reused']) == (4, 3, 0)
    assert list(report['skipped']) == ['images/missing.png']
    assert 'no such file' in report['skipped']['images/missing.png']
    assert report['source_formats'] == dict(png=1, dicom=1, jpeg=1)
    saved = json.loads((root / 'prepared' / str(SIDE) / 'prepare_report.json').read_text())
    assert saved['skipped'] == report['skipped']
    # raw pixels: (30, 25) uint16 twice, (24, 20) uint8 once
    assert report['store_bytes'] == 2 * 30 * 25 * 2 + 24 * 20


def test_store_image_keeps_original_size_map_range_and_spacing(data_root):
    root, _ = data_root
    store = root / 'prepared' / str(SIDE)
    for name in ('a.png', 'b.dcm'):
        original, meta0 = read_cxr_image(str(root / 'images' / name))
        stored, meta = read_cxr_image(str(store / 'images' / name), keep_stored=True)
        assert stored.shape == reduced_size(H, W, SIDE) == (30, 25)
        assert meta['original_shape'] == (H, W) and meta['source_format'] == 'prepared'
        assert meta['scale'] == (25 / W, 30 / H)
        assert meta['pixel_spacing'] == meta0['pixel_spacing']
        # the map gives the original intensities (MONOCHROME1 inverted, rescaled), area
        # averaged; the range is the whole original's
        slope, intercept = meta['stored_map']
        area = cv2.resize(original, (25, 30), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(slope * stored + intercept, area, atol=abs(slope))
        lo, hi = sorted(slope * v + intercept for v in meta['value_range'])
        assert (lo, hi) == (original.min(), original.max())
    # a small image is stored whole: its exact pixels
    small, meta = read_cxr_image(str(store / 'images' / 'c.jpg'))
    np.testing.assert_array_equal(small, read_cxr_image(str(root / 'images' / 'c.jpg'))[0])
    assert meta['scale'] == (1., 1.) and meta['original_shape'] == (24, 20)


def test_missing_image_is_a_clear_error_the_dataset_skips(data_root):
    root, _ = data_root
    with pytest.raises(CXRImageError, match=r'missing\.png.*not in the image store'):
        read_cxr_image(str(root / 'prepared' / str(SIDE) / 'images' / 'missing.png'))
    with pytest.raises(CXRImageError, match='no such file'):
        read_cxr_image(str(root / 'images' / 'missing.png'))  # not in a store


def test_boxes_and_masks_land_on_the_bright_square(data_root):
    root, _ = data_root
    ds = dataset(root, [dict(type='LoadCXRImage'), dict(type='LoadCXRAnnotations')])
    for i in (0, 1):
        results = ds[i]
        img, mask = results['img'], results['gt_seg_masks'][0]
        assert img.shape == results['decoded_shape'] == results['img_shape'] == (30, 25)
        assert results['ori_shape'] == (H, W) == (results['height'], results['width'])
        sx, sy = results['scale_factor']
        np.testing.assert_allclose(results['gt_bboxes'][0],
                                   [BOX[0] * sx, BOX[1] * sy, BOX[2] * sx, BOX[3] * sy],
                                   rtol=1e-6)
        bright = img > 0.9  # the square's pixels (the ramp stays below 0.2)
        rows, cols = np.flatnonzero(bright.any(1)), np.flatnonzero(bright.any(0))
        assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == (5, 10, 15, 20)
        np.testing.assert_array_equal(mask, bright)


def test_test_pipeline_evaluates_at_the_original_size(data_root):
    root, _ = data_root
    results = dataset(root, CFG_TEST, test_mode=True)[0]
    sample = results['data_samples']
    assert sample.ori_shape == (H, W) and sample.img_shape == (24, 24)
    masks = sample.gt_seg_masks.data.numpy()
    assert masks.shape == (1, H, W) and masks[0, 30:60, 15:45].all() and masks.sum() == 900
    w_scale, h_scale = sample.scale_factor  # stored, then resized: back to original pixels
    boxes = sample.gt_instances.bboxes.numpy() / [w_scale, h_scale, w_scale, h_scale]
    np.testing.assert_allclose(boxes[0], BOX, rtol=1e-5)
    original = dataset(root, CFG_TEST, store=False, test_mode=True)[0]['data_samples']
    np.testing.assert_array_equal(original.gt_seg_masks.data.numpy(), masks)
    w_scale, h_scale = original.scale_factor
    np.testing.assert_allclose(
        original.gt_instances.bboxes.numpy() / [w_scale, h_scale, w_scale, h_scale], boxes,
        rtol=1e-5)


def test_train_crops_the_same_region_from_the_store(data_root):
    root, _ = data_root
    from_store, original = dataset(root, CFG_TRAIN), dataset(root, CFG_TRAIN, store=False)
    for seed in range(4):
        with sample_rng((seed, )):
            a = original[1]
        with sample_rng((seed, )):
            b = from_store[1]
        with sample_rng((seed, )):
            again = from_store[1]
        # seeded: the same draws every time (a resumed run loads what the first did)
        np.testing.assert_array_equal(b['inputs'], again['inputs'])
        # the same crop, up to the stored grid's rounding (a third of an original pixel)
        boxes_a = a['data_samples'].gt_instances.bboxes.numpy()
        boxes_b = b['data_samples'].gt_instances.bboxes.numpy()
        np.testing.assert_allclose(boxes_a, boxes_b, atol=1.)
        masks = b['data_samples'].gt_seg_masks.data.numpy()[0].astype(bool)
        img = b['inputs'][0].numpy()  # the square under its mask, the ramp around it
        assert img[masks].mean() > 0.8 and img[~masks].mean() < 0.2
        mismatch = a['data_samples'].gt_seg_masks.data.numpy() != masks
        assert mismatch.mean() < 0.1


def test_no_store_prefix_reads_the_originals_unchanged(data_root):
    root, _ = data_root
    results = dataset(root, [dict(type='LoadCXRImage')], store=False)[0]
    assert 'decoded_shape' not in results and 'scale_factor' not in results
    assert results['img'].shape == (H, W)


def test_resume_after_a_kill_keeps_finished_images(data_root):
    root, report = data_root
    store = root / 'prepared' / str(SIDE)
    before = read_cxr_image(str(store / 'images' / 'b.dcm'), keep_stored=True)[0].copy()
    # a kill during the next append: half a record line, some pixels without a record
    with open(store / RECORDS, 'a') as f:
        f.write('{"key": "images/x.png", "off')
    with open(store / PIXELS, 'ab') as f:
        f.write(b'\1' * 777)
    os.remove(store / 'index.npy')
    with pytest.raises(CXRImageError, match='preparation has not finished'):
        ImageStore(str(store))
    again = prepare_images([str(root / 'annotations' / 'train.json')], max_side=SIDE)
    assert (again['prepared'], again['reused']) == (0, 3)
    assert again['store_bytes'] == report['store_bytes']  # the torn append was cut off
    np.testing.assert_array_equal(
        read_cxr_image(str(store / 'images' / 'b.dcm'), keep_stored=True)[0], before)
    # a source that changed is prepared again
    cv2.imwrite(str(root / 'images' / 'a.png'), square_image()[::-1].copy())
    os.utime(root / 'images' / 'a.png', ns=(1, 1))
    third = prepare_images([str(root / 'annotations' / 'train.json')], max_side=SIDE)
    assert (third['prepared'], third['reused']) == (1, 2)


def test_other_options_need_overwrite(data_root):
    root, _ = data_root
    ann = str(root / 'annotations' / 'train.json')
    store = str(root / 'prepared' / str(SIDE))
    with pytest.raises(FileExistsError, match='max_side'):
        prepare_images([ann], store=store, max_side=40)
    report = prepare_images([ann], store=store, max_side=40, overwrite=True)
    assert report['prepared'] == 3
    assert read_cxr_image(osp.join(store, 'images', 'a.png'))[0].shape == (40, 33)


def test_non_linear_images_are_quantised_over_their_range():
    img = np.array([[-3.5, 0.25], [7., 100.]], np.float32)  # e.g. after a VOI LUT
    values, (slope, intercept) = to_unsigned(img, None)
    assert values.dtype == np.uint16 and (values.min(), values.max()) == (0, 65535)
    np.testing.assert_allclose(slope * values + intercept, img, atol=slope / 2 + 1e-6)
    whole, stored_map = to_unsigned(np.array([[0., 255.]], np.float32), None)
    assert whole.dtype == np.uint8 and stored_map == (1., 0.)
    signed, (slope, intercept) = to_unsigned(np.array([[-1000, 2000]], np.int16), (1., -24.))
    assert signed.dtype == np.uint16
    np.testing.assert_array_equal(slope * signed + intercept, [[-1024, 1976]])


def test_real_dicom_through_the_store(tmp_path):
    """pydicom's CT_small (signed, rescaled 128 px) round trip at long side 64."""
    path = get_testdata_file('CT_small.dcm', download=False)
    root = tmp_path / 'root'
    (root / 'annotations').mkdir(parents=True)
    os.symlink(path, root / 'ct.dcm')
    meta = dict(dataset='ct', tasks=['cls'], cls_classes=['x'], converter_version=1)
    ann = root / 'annotations' / 'test.json'
    ann.write_text(json.dumps(dict(metainfo=meta, data_list=[
        dict(img_path='ct.dcm', height=128, width=128, cls_label=[1])])))
    prepare_images([str(ann)], max_side=64)
    pipeline = Compose([LoadCXRImage(defer_norm=True), CXRResize(scale=32)])
    original = pipeline(dict(img_path=str(root / 'ct.dcm')))['img']
    stored = pipeline(dict(img_path=str(root / 'prepared' / '64' / 'ct.dcm')))['img']
    assert stored.min() >= 0 and stored.max() <= 1  # normalised by the original's range
    assert np.abs(original - stored).max() < 0.1
