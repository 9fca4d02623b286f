"""Tests for fxmm.datasets.transforms.loading.LoadCXRImage."""
import warnings

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from fxmm.datasets.image_io import CXRImageError
from fxmm.datasets.transforms.loading import LoadCXRImage
from fxmm.datasets.transforms.loading_annotations import LoadCXRAnnotations
from fxmm.structures.mask_rle import encode_mask
from fxmm.registry import TRANSFORMS


@pytest.fixture
def png16(tmp_path):
    """A 16-bit PNG (H, W) = (20, 30) with values 1000..1599 and its pixels."""
    pixels = (np.arange(600, dtype=np.uint16) + 1000).reshape(20, 30)
    path = str(tmp_path / 'cxr16.png')
    cv2.imwrite(path, pixels)
    return path, pixels


def test_built_from_config_minmax(png16):
    path, pixels = png16
    transform = TRANSFORMS.build(dict(type='LoadCXRImage'))
    assert isinstance(transform, LoadCXRImage)
    results = transform(dict(img_path=path))
    img = results['img']
    assert img.dtype == np.float32 and img.shape == (20, 30)
    np.testing.assert_allclose(img, (pixels - 1000.) / 599., atol=1e-7)
    assert img.min() == 0 and img.max() == 1
    assert results['ori_shape'] == results['img_shape'] == (20, 30)
    assert (results['height'], results['width']) == (20, 30)
    assert results['pixel_spacing'] is None


def test_out_range_and_float64(png16):
    path, pixels = png16
    img = LoadCXRImage(out_range=(-1, 1), to_float32=False)(dict(img_path=path))['img']
    assert img.dtype == np.float64
    np.testing.assert_allclose(img, (pixels - 1000.) / 599. * 2 - 1, atol=1e-12)
    assert (img.min(), img.max()) == (-1, 1)


def test_out_range_float32_and_raw_unchanged(png16):
    path, pixels = png16
    transform = LoadCXRImage(out_range=(-1, 1))
    raw = pixels.astype(np.float32)
    img = transform._normalise(raw)
    assert img.dtype == np.float32 and img is not raw
    np.testing.assert_array_equal(raw, pixels)  # normalised on a new array
    np.testing.assert_allclose(img, (pixels - 1000.) / 599. * 2 - 1, atol=2e-7)
    assert (img.min(), img.max()) == (-1, 1)
    np.testing.assert_array_equal(transform(dict(img_path=path))['img'], img)
    # in place (what transform does with the array it read): the same values, no new array
    in_place = transform._normalise(raw, inplace=True)
    assert in_place is raw
    np.testing.assert_array_equal(in_place, img)


def test_percentile_clips_outliers(tmp_path):
    pixels = np.tile(np.arange(100, dtype=np.uint16), (10, 1))  # (10, 100) ramp 0..99
    pixels[0, 0] = 60000  # one burnt-in marker pixel
    cv2.imwrite(str(tmp_path / 'marker.png'), pixels)
    results = dict(img_path=str(tmp_path / 'marker.png'))
    low, high = np.percentile(pixels.astype(np.float64), (1, 99))
    img = LoadCXRImage(intensity_norm='percentile', percentiles=(1, 99))(results)['img']
    np.testing.assert_allclose(img, (np.clip(pixels, low, high) - low) / (high - low), atol=1e-6)
    assert img[0, 0] == 1 and img[5, 0] == 0
    # min-max lets the single marker squash the ramp into the bottom 0.2 % of the range
    squashed = LoadCXRImage()(dict(img_path=results['img_path']))['img']
    assert squashed[5, 99] < 0.002 < 0.9 < img[5, 99]


def test_constant_image_has_no_division_by_zero(tmp_path):
    cv2.imwrite(str(tmp_path / 'flat.png'), np.full((8, 8), 77, np.uint8))
    for norm in ('minmax', 'percentile'):
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            img = LoadCXRImage(out_range=(0.25, 1), intensity_norm=norm)(
                dict(img_path=str(tmp_path / 'flat.png')))['img']
        np.testing.assert_array_equal(img, np.full((8, 8), 0.25, np.float32))


def test_three_channels(png16):
    path, _ = png16
    img = LoadCXRImage(channels=3)(dict(img_path=path))['img']
    assert img.shape == (20, 30, 3)
    np.testing.assert_array_equal(img[..., 0], img[..., 2])
    np.testing.assert_array_equal(img[..., 0], LoadCXRImage()(dict(img_path=path))['img'])


def test_dicom_spacing_and_monochrome1(tmp_path):
    ct = get_testdata_file('CT_small.dcm', download=False)
    results = LoadCXRImage()(dict(img_path=ct, height=128, width=128))
    assert results['pixel_spacing'] == (0.661468, 0.661468)
    assert results['ori_shape'] == (128, 128)

    ds = pydicom.dcmread(ct)
    ds.PhotometricInterpretation = 'MONOCHROME1'
    ds.save_as(tmp_path / 'ct_mono1.dcm')
    inverted = LoadCXRImage()(dict(img_path=str(tmp_path / 'ct_mono1.dcm')))['img']
    np.testing.assert_allclose(inverted, 1 - results['img'], atol=1e-6)


def test_jsrt_raw_is_shown_bright_where_stored_low(tmp_path):
    stored = np.full((16, 16), 4000, '>u2')
    stored[4:8, 4:8] = 100  # dense bone: low stored value in JSRT
    (tmp_path / 'JPCLN002.IMG').write_bytes(stored.tobytes())
    img = LoadCXRImage()(dict(img_path=str(tmp_path / 'JPCLN002.IMG')))['img']
    assert img[5, 5] == 1 and img[0, 0] == 0


def test_size_mismatch_with_annotation(png16):
    path, _ = png16
    mismatch = r'cxr16\.png.*\(20, 30\).*height=20, width=31.*line up'
    with pytest.raises(CXRImageError, match=mismatch):
        LoadCXRImage()(dict(img_path=path, height=20, width=31))
    results = LoadCXRImage()(dict(img_path=path, height=20, width=30))
    assert (results['height'], results['width']) == (20, 30)


def test_unreadable_file_raises_or_is_skipped(tmp_path):
    missing = str(tmp_path / 'gone.dcm')
    with pytest.raises(CXRImageError, match=r'gone\.dcm.*no such file'):
        LoadCXRImage()(dict(img_path=missing))
    assert LoadCXRImage(ignore_empty=True)(dict(img_path=missing)) is None


def test_local_backend_args(png16):
    path, pixels = png16
    img = LoadCXRImage(backend_args=dict(backend='local'))(dict(img_path=path))['img']
    assert img.shape == pixels.shape and img[-1, -1] == 1


@pytest.mark.parametrize('kwargs,message', [
    (dict(out_range=(1, 0)), 'out_range'),
    (dict(intensity_norm='zscore'), "intensity_norm must be 'minmax' or 'percentile'"),
    (dict(percentiles=(99, 1)), 'percentiles'),
    (dict(percentiles=(0, 101)), 'percentiles'),
    (dict(channels=2), 'channels must be 1 or 3, got 2'),
    (dict(min_decoded_side=0), 'min_decoded_side must be a positive int'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoadCXRImage(**kwargs)


def test_repr_lists_arguments():
    text = repr(LoadCXRImage(intensity_norm='percentile', channels=3))
    assert text.startswith('LoadCXRImage(') and "intensity_norm='percentile'" in text
    assert 'channels=3' in text and 'percentiles=(0.5, 99.5)' in text
    assert 'min_decoded_side=None' in text


def test_reduced_jpeg_decoding_keeps_boxes_and_masks_on_the_image(tmp_path):
    # a 257 x 200 JPEG, a bright rectangle rows 64..191, columns 40..119; at 1/4: 65 x 50
    img = np.full((257, 200), 30, np.uint8)
    img[64:192, 40:120] = 220
    path = str(tmp_path / 'x.jpg')
    cv2.imwrite(path, img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    mask = (img > 100).astype(np.uint8)
    results = dict(img_path=path, height=257, width=200, seg_classes=['x'],
                   seg=dict(x=encode_mask(mask)),
                   instances=[dict(bbox=[40., 64., 120., 192.], bbox_label=0)])
    results = LoadCXRImage(min_decoded_side=64)(results)
    assert results['img'].shape == results['decoded_shape'] == (65, 50)
    assert results['ori_shape'] == (257, 200) and results['scale_factor'] == (0.25, 0.25)
    results = LoadCXRAnnotations(with_cls=False)(results)
    np.testing.assert_array_equal(results['gt_bboxes'], [[10., 16., 30., 48.]])
    bright = results['img'] > 0.5
    np.testing.assert_array_equal(results['gt_seg_masks'][0], bright)
    assert bright[16:48, 10:30].all() and bright.sum() == 32 * 20
