"""``LoadCXRImage(defer_norm=True)``: stored integers through crops, flips and resizes, the
min-max normalisation applied to the resized result only."""
import cv2
import numpy as np
import pytest

from fxmm.datasets.transforms import (CXRRandomFlip, CXRRandomResizedCrop, CXRRandomRotate,
                                      CXRResize, LoadCXRImage, PackCXRInputs)
from fxmm.datasets.transforms.loading import DEFERRED_NORM_KEY, DeferredNorm
from fxmm.testing.dicom import write_grey_dicom as write_dicom

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(200, 3900, size=(96, 80)).astype(np.uint16)  # 12 bits in 16


def _png(tmp_path, pixels, name='img.png'):
    path = str(tmp_path / name)
    assert cv2.imwrite(path, pixels)
    return path


@pytest.fixture(params=['png16', 'png8', 'dicom_mono1_rescaled', 'dicom_int16', 'jsrt'])
def stored_file(request, tmp_path):
    """A file of each linearly stored kind and the stored values it holds."""
    kind = request.param
    if kind == 'png16':
        return _png(tmp_path, IMAGE), IMAGE
    if kind == 'png8':
        pixels = (IMAGE >> 4).astype(np.uint8)
        return _png(tmp_path, pixels), pixels
    if kind == 'dicom_mono1_rescaled':
        return write_dicom(tmp_path / 'm1.dcm', IMAGE, 'MONOCHROME1', 12, RescaleSlope=2,
                           RescaleIntercept=-1000), IMAGE
    if kind == 'dicom_int16':
        pixels = IMAGE.astype(np.int16) - 2048
        return write_dicom(tmp_path / 's.dcm', pixels, bits_stored=12), pixels
    square = IMAGE[:80, :80].astype('>u2')
    (tmp_path / 'JPCLN001.IMG').write_bytes(square.tobytes())
    return str(tmp_path / 'JPCLN001.IMG'), square.astype(np.uint16)


def _load(path, **kwargs):
    return LoadCXRImage(**kwargs)(dict(img_path=path))


@pytest.mark.parametrize('kwargs', [dict(), dict(channels=3), dict(to_float32=False)])
def test_kept_stored_then_packed_equals_eager(stored_file, kwargs):
    path, stored = stored_file
    results = _load(path, defer_norm=True, **kwargs)
    assert results['img'].dtype == stored.dtype  # no float copy of the whole image
    np.testing.assert_array_equal(results['img'], stored)
    assert isinstance(results[DEFERRED_NORM_KEY], DeferredNorm)
    eager = _load(path, **kwargs)
    assert DEFERRED_NORM_KEY not in eager
    packed, packed_eager = PackCXRInputs()(results), PackCXRInputs()(eager)
    assert packed['inputs'].shape == packed_eager['inputs'].shape
    # bit-identical: the same correctly rounded (v - low) / (high - low) (float32 at Pack)
    assert packed['inputs'].equal(packed_eager['inputs'])
    assert DEFERRED_NORM_KEY not in results


def test_out_range_kept_stored(stored_file):
    path, _ = stored_file
    deferred = PackCXRInputs()(_load(path, defer_norm=True, out_range=(-1, 2)))['inputs']
    eager = PackCXRInputs()(_load(path, out_range=(-1, 2)))['inputs']
    assert (deferred.min(), deferred.max()) == (-1, 2)
    np.testing.assert_allclose(deferred, eager, rtol=0, atol=1e-6)


@pytest.mark.parametrize('interpolation', ['bilinear', 'area', 'nearest'])
def test_resize_normalises_only_the_resized_stored_values(stored_file, interpolation):
    path, stored = stored_file
    resize = CXRResize(scale=(40, 36), interpolation=interpolation)
    deferred = resize(_load(path, defer_norm=True))
    eager = resize(_load(path))
    assert DEFERRED_NORM_KEY not in deferred
    img = deferred['img']
    assert img.dtype == np.float32 and img.shape == eager['img'].shape == (36, 40)
    # what the deferred norm is: the integer resize of the stored values, normalised
    resized = cv2.resize(stored, (40, 36), interpolation={
        'bilinear': cv2.INTER_LINEAR, 'area': cv2.INTER_AREA,
        'nearest': cv2.INTER_NEAREST}[interpolation]).astype(np.float64)
    low, high = float(stored.min()), float(stored.max())
    inverted = path.endswith(('.IMG', 'm1.dcm'))
    expected = (high - resized) / (high - low) if inverted else (resized - low) / (high - low)
    np.testing.assert_allclose(img, expected, rtol=0, atol=1e-6)
    # and against normalising first: within the integer rounding of the resize
    step = 1 / (high - low)
    error = np.abs(img - eager['img']).max()
    if interpolation == 'nearest':
        assert error == 0
    else:
        assert 0 < error <= step * (0.5 if stored.dtype.itemsize == 2 else 1) + 1e-6


def test_overshooting_interpolation_normalises_first(stored_file):
    path, _ = stored_file
    resize = CXRResize(scale=(40, 36), interpolation='bicubic')
    deferred, eager = resize(_load(path, defer_norm=True)), resize(_load(path))
    np.testing.assert_array_equal(deferred['img'], eager['img'])
    assert eager['img'].min() < 0  # the overshoot that a uint16 resize would have clipped


def test_crop_flip_resize_pipeline_matches_eager_within_rounding(tmp_path):
    path = _png(tmp_path, IMAGE)
    outputs = []
    for defer in (True, False):
        np.random.seed(3)  # the transforms' generators are seeded from it on first use
        transforms = [LoadCXRImage(defer_norm=defer), CXRRandomFlip(prob=1.),
                      CXRRandomResizedCrop(scale=32, area_range=(0.3, 0.6)), PackCXRInputs()]
        results = dict(img_path=path)
        for transform in transforms:
            results = transform(results)
        outputs.append(results['inputs'])
    assert outputs[0].shape == (1, 32, 32)
    step = 1 / float(IMAGE.max() - IMAGE.min())
    assert (outputs[0] - outputs[1]).abs().max() <= 0.5 * step + 1e-6


def test_rotation_normalises_first(tmp_path):
    """The border is a normalised value: a rotation of a pending image equals the eager one."""
    path = _png(tmp_path, IMAGE)
    rotated = []
    for defer in (True, False):
        rotate = CXRRandomRotate(border_value=0.5)
        rotate.sample_angle = lambda: 25.  # a fixed angle, large enough for border corners
        rotated.append(rotate(_load(path, defer_norm=defer)))
    assert DEFERRED_NORM_KEY not in rotated[0]
    np.testing.assert_array_equal(rotated[0]['img'], rotated[1]['img'])
    assert (rotated[0]['img'] == 0.5).sum() > 20  # the corners are border


def test_not_deferred_when_not_linear_or_without_contrast(tmp_path):
    colour = _png(tmp_path, np.dstack([IMAGE >> 4] * 3).astype(np.uint8), 'rgb.png')
    windowed = write_dicom(tmp_path / 'w.dcm', IMAGE, bits_stored=12, WindowCenter=2000,
                           WindowWidth=1000)
    flat = _png(tmp_path, np.full((8, 8), 77, np.uint8), 'flat.png')
    for path in (colour, windowed, flat):
        results = _load(path, defer_norm=True)
        assert DEFERRED_NORM_KEY not in results and results['img'].dtype == np.float32
        np.testing.assert_array_equal(results['img'], _load(path)['img'])
    assert (_load(flat, defer_norm=True)['img'] == 0).all()
    # percentile clipping is not linear: normalised at once
    png = _png(tmp_path, IMAGE)
    results = _load(png, defer_norm=True, intensity_norm='percentile')
    assert DEFERRED_NORM_KEY not in results and results['img'].dtype == np.float32
