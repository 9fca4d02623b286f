"""Tests for fxmm.datasets.image_io: every stored CXR format to one float image."""
import io

import cv2
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, pixel_array
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

from fxmm.datasets.image_io import (CXRImageError, _grey_pipeline, _linear_map,
                                    _native_grey_frame, _output_range, apply_linear,
                                    read_cxr_image, reduction_for)
from fxmm.testing.dicom import write_compressed_grey_dicom
from fxmm.testing.dicom import write_grey_dicom as write_dicom


def bundled(name):
    """Path of a file bundled with pydicom (never downloaded)."""
    path = get_testdata_file(name, download=False)
    assert path is not None, f'{name} is not bundled with this pydicom'
    return path


def write_without_meta(src, dst, implicit_vr):
    """Re-write a DICOM file without preamble and file meta (as old archives hold them)."""
    ds = pydicom.dcmread(src)
    del ds.file_meta
    ds.preamble = None
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=implicit_vr, little_endian=True)
    dst.write_bytes(buffer.getvalue())
    return str(dst)


def full_resolution(shape):
    """The meta of an image read whole: its own size, scale 1, its own value range."""
    return dict(original_shape=tuple(shape), scale=(1., 1.), value_range=None)


RAMP12 = np.array([[0, 100, 1000], [2000, 3000, 4095]], dtype=np.uint16)


# ----------------------------------------------------------------------------- DICOM values
def test_dicom_rescale_matches_stored_values():
    img, meta = read_cxr_image(bundled('CT_small.dcm'))
    ds = pydicom.dcmread(bundled('CT_small.dcm'))
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert img.dtype == np.float32 and img.shape == (128, 128)
    np.testing.assert_array_equal(img, expected)
    assert float(ds.RescaleIntercept) == -1024  # so the test did shift the values
    assert meta == dict(pixel_spacing=(0.661468, 0.661468), photometric='MONOCHROME2',
                        bits_stored=16, source_format='dicom', stored_map=None,
                        **full_resolution((128, 128)))


@pytest.mark.parametrize('name', [
    'MR_small_bigendian.dcm', 'MR_small_expb.dcm', 'MR_small_implicit.dcm', 'MR_small_padded.dcm',
    'MR_small_RLE.dcm', 'MR_small_jp2klossless.dcm', 'MR_small_jpeg_ls_lossless.dcm'])
def test_dicom_encodings_of_one_image_agree(name):
    reference, _ = read_cxr_image(bundled('MR_small.dcm'))
    img, meta = read_cxr_image(bundled(name))
    np.testing.assert_array_equal(img, reference)
    assert meta['pixel_spacing'] == (0.3125, 0.3125)


@pytest.mark.parametrize('name,reference', [
    ('rtdose_rle_1frame.dcm', 'rtdose_1frame.dcm'),       # RLE, 32-bit
    ('rtdose_expb_1frame.dcm', 'rtdose_1frame.dcm'),      # big endian, 32-bit
    ('SC_rgb_jpeg_gdcm.dcm', 'SC_rgb_rle.dcm'),           # lossless JPEG vs RLE, colour
    ('SC_rgb_small_odd_big_endian.dcm', 'SC_rgb_small_odd.dcm')])
def test_dicom_compressed_and_uncompressed_pairs_agree(name, reference):
    np.testing.assert_array_equal(read_cxr_image(bundled(name))[0],
                                  read_cxr_image(bundled(reference))[0])


def test_dicom_lossy_jpeg_close_to_lossless():
    lossy, _ = read_cxr_image(bundled('SC_rgb_dcmtk_+eb+cr.dcm'))
    lossless, _ = read_cxr_image(bundled('SC_rgb_rle.dcm'))
    assert 0 < np.abs(lossy - lossless).max() <= 2


def test_dicom_colour_becomes_luma():
    img, meta = read_cxr_image(bundled('SC_rgb_rle.dcm'))
    rgb = pydicom.dcmread(bundled('SC_rgb_rle.dcm')).pixel_array.astype(np.float64)
    np.testing.assert_allclose(img, rgb @ [0.299, 0.587, 0.114], atol=1e-3)
    assert img.shape == (100, 100) and meta['photometric'] == 'RGB'


def test_dicom_palette_colour_becomes_luma():
    img, meta = read_cxr_image(bundled('examples_palette.dcm'))
    ds = pydicom.dcmread(bundled('examples_palette.dcm'))
    rgb = apply_color_lut(ds.pixel_array, ds).astype(np.float64)  # 16-bit palette entries
    np.testing.assert_allclose(img, rgb @ [0.299, 0.587, 0.114], rtol=1e-5)
    assert img.shape == (350, 800) and img.max() > 255 and meta['photometric'] == 'PALETTE COLOR'


def test_dicom_first_frame_of_multi_frame():
    img, _ = read_cxr_image(bundled('rtdose.dcm'))
    frames = pydicom.dcmread(bundled('rtdose.dcm')).pixel_array
    assert frames.shape == (15, 10, 10)
    np.testing.assert_array_equal(img, frames[0])
    assert not np.array_equal(frames[0], frames[7])  # frame 0 is a real choice


def test_dicom_without_preamble_and_file_meta(tmp_path):
    reference, _ = read_cxr_image(bundled('MR_small.dcm'))
    for implicit_vr, name in ((True, 'implicit.dcm'), (False, 'explicit_no_extension')):
        path = write_without_meta(bundled('MR_small.dcm'), tmp_path / name, implicit_vr)
        with open(path, 'rb') as f:
            assert f.read(132)[128:] != b'DICM'
        img, meta = read_cxr_image(path)
        np.testing.assert_array_equal(img, reference)
        assert meta['source_format'] == 'dicom'


def test_dicom_rescale_slope_intercept(tmp_path):
    path = write_dicom(tmp_path / 'rescale.dcm', RAMP12, bits_stored=12,
                       RescaleSlope=2, RescaleIntercept=-1000, PixelSpacing=[0.2, 0.3])
    img, meta = read_cxr_image(path)
    np.testing.assert_array_equal(img, [[-1000, -800, 1000], [3000, 5000, 7190]])
    assert meta['pixel_spacing'] == (0.2, 0.3) and meta['bits_stored'] == 12


def test_dicom_imager_pixel_spacing_when_pixel_spacing_absent(tmp_path):
    path = write_dicom(tmp_path / 'dx.dcm', RAMP12, ImagerPixelSpacing=[0.139, 0.14])
    assert read_cxr_image(path)[1]['pixel_spacing'] == (0.139, 0.14)


def test_dicom_linear_window_after_rescale(tmp_path):
    path = write_dicom(tmp_path / 'window.dcm', RAMP12, bits_stored=12, RescaleSlope=2,
                       RescaleIntercept=-1000, WindowCenter=2000, WindowWidth=4001)
    img, _ = read_cxr_image(path)
    # PS3.3 C.11.2.1.2.1 on x = 2v - 1000, output range = rescaled 12-bit range
    y_min, y_max = -1000, 4095 * 2 - 1000
    c, w = 2000 - 0.5, 4001 - 1
    x = np.array([[-1000, -800, 1000], [3000, 5000, 7190]], dtype=np.float64)
    expected = ((x - c) / w + 0.5) * (y_max - y_min) + y_min
    expected[x <= c - w / 2] = y_min
    expected[x > c + w / 2] = y_max
    np.testing.assert_allclose(img, expected, rtol=1e-6)
    assert img[0, 0] == y_min and img[1, 2] == y_max and y_min < img[0, 2] < img[1, 0] < y_max


def test_dicom_voi_lut_preferred_over_window(tmp_path):
    lut = Dataset()
    lut.add_new('LUTDescriptor', 'US', [4096, 0, 16])
    lut.add_new('LUTData', 'US', [4095 - i for i in range(4096)])  # a reversing LUT
    path = write_dicom(tmp_path / 'voilut.dcm', RAMP12, bits_stored=12, VOILUTSequence=[lut],
                       WindowCenter=2048, WindowWidth=4096)
    img, _ = read_cxr_image(path)
    np.testing.assert_array_equal(img, 4095 - RAMP12.astype(np.float32))


def test_dicom_voi_lut_indexed_by_rounded_rescaled_values(tmp_path):
    lut = Dataset()
    lut.add_new('LUTDescriptor', 'US', [4096, 0, 16])
    lut.add_new('LUTData', 'US', [4095 - i for i in range(4096)])
    path = write_dicom(tmp_path / 'voilut_rescaled.dcm', RAMP12, bits_stored=12,
                       VOILUTSequence=[lut], RescaleSlope=0.5, RescaleIntercept=0)
    img, _ = read_cxr_image(path)
    # rescaled x = v / 2 = [0, 50, 500, 1000, 1500, 2047.5]; 2047.5 rounds (half to even) to 2048
    np.testing.assert_array_equal(img, [[4095, 4045, 3595], [3095, 2595, 2047]])


def test_dicom_bits_stored_masks_unused_high_bits(tmp_path):
    dirty = RAMP12 | np.uint16(0xF000)  # junk in the 4 unused bits
    img, _ = read_cxr_image(write_dicom(tmp_path / 'dirty.dcm', dirty, bits_stored=12))
    np.testing.assert_array_equal(img, RAMP12)


def test_dicom_monochrome1_inverted_within_stored_range(tmp_path):
    mono2, _ = read_cxr_image(write_dicom(tmp_path / 'm2.dcm', RAMP12, bits_stored=12))
    mono1, meta = read_cxr_image(write_dicom(tmp_path / 'm1.dcm', RAMP12, 'MONOCHROME1', 12))
    np.testing.assert_array_equal(mono1, 4095 - mono2)
    assert meta['photometric'] == 'MONOCHROME1'
    assert mono1.argmax() == mono2.argmin() and mono1.argmin() == mono2.argmax()


def test_dicom_monochrome1_real_file_with_window(tmp_path):
    ds = pydicom.dcmread(bundled('MR_small.dcm'))
    ds.PhotometricInterpretation = 'MONOCHROME1'
    ds.save_as(tmp_path / 'mr_mono1.dcm')
    mono1, _ = read_cxr_image(str(tmp_path / 'mr_mono1.dcm'))
    mono2, _ = read_cxr_image(bundled('MR_small.dcm'))
    # the window maps onto the signed 16-bit range [-32768, 32767]; inverted within it
    np.testing.assert_array_equal(mono1, -1 - mono2)


# ----------------------------------------------------------------------------- DICOM fast paths
def signed_dirty(tmp_path):
    """Signed 12 bits in 16 with junk in the unused bits (sign extension needed)."""
    values = np.array([[-2048, -1, 0], [1, 1000, 2047]], dtype=np.int16)
    dirty = (values.view(np.uint16) & np.uint16(0x0FFF)) | np.uint16(0xA000)
    return write_dicom(tmp_path / 'signed.dcm', dirty.view(np.int16), bits_stored=12)


@pytest.mark.parametrize('make_path', [
    lambda tmp: bundled('CT_small.dcm'),          # signed 16
    lambda tmp: bundled('MR_small_implicit.dcm'),  # implicit VR
    lambda tmp: bundled('MR_small_padded.dcm'),
    lambda tmp: write_dicom(tmp / 'dirty.dcm', RAMP12 | np.uint16(0xF000), bits_stored=12),
    lambda tmp: write_dicom(tmp / 'u8.dcm', np.arange(12, dtype=np.uint8).reshape(3, 4) * 20,
                            bits_stored=7),
    signed_dirty,
])
def test_dicom_native_frame_equals_pydicom(tmp_path, make_path):
    ds = pydicom.dcmread(make_path(tmp_path))
    arr = _native_grey_frame(ds)
    expected = pixel_array(ds, index=0)
    assert arr is not None and arr.dtype == expected.dtype
    np.testing.assert_array_equal(arr, expected)


@pytest.mark.parametrize('name', [
    'MR_small_bigendian.dcm', 'MR_small_RLE.dcm', 'SC_rgb_small_odd.dcm', 'liver_1frame.dcm',
    'rtdose_1frame.dcm'])
def test_dicom_native_frame_left_to_pydicom(name):
    # big endian, compressed, colour, 1 bit, 32 bits: pydicom decodes them
    assert _native_grey_frame(pydicom.dcmread(bundled(name))) is None


@pytest.mark.parametrize('photometric', ['MONOCHROME2', 'MONOCHROME1'])
@pytest.mark.parametrize('dtype,slope,intercept', [
    (np.uint16, 1, 0), (np.uint16, 2, -1000), (np.uint16, 0.5, 0), (np.uint16, -3, 7),
    (np.int16, 1, -1024), (np.int16, 0.37, 12.25), (np.uint8, 1.5, -0.5)])
def test_dicom_linear_grey_equals_float64_pipeline(tmp_path, photometric, dtype, slope,
                                                   intercept):
    info = np.iinfo(dtype)
    pixels = np.linspace(max(info.min, -2048), min(info.max, 4095), 40).astype(dtype)
    bits = 8 if dtype == np.uint8 else 12
    path = write_dicom(tmp_path / 'lin.dcm', pixels.reshape(5, 8), photometric, bits,
                       RescaleSlope=slope, RescaleIntercept=intercept)
    ds = pydicom.dcmread(path)
    arr = pixel_array(ds, index=0)
    expected = _grey_pipeline(arr, ds)
    if photometric == 'MONOCHROME1':
        lo, hi = _output_range(ds)
        expected = lo + hi - expected
    img = apply_linear(arr, *_linear_map(arr, ds, photometric))
    assert img.dtype == np.float32
    if float(slope).is_integer() and float(intercept).is_integer():
        np.testing.assert_array_equal(img, expected)
    else:  # computed in float64 too, in another order: equal after rounding to float32
        np.testing.assert_array_max_ulp(img, expected.astype(np.float32), maxulp=1)
    np.testing.assert_array_equal(read_cxr_image(path)[0], img)


def test_dicom_linear_grey_not_used_with_a_lut_or_window(tmp_path):
    lut = Dataset()
    lut.add_new('LUTDescriptor', 'US', [4096, 0, 16])
    lut.add_new('LUTData', 'US', list(range(4096)))
    for name, elements in (('voi', dict(VOILUTSequence=[lut])),
                           ('mod', dict(ModalityLUTSequence=[lut])),
                           ('win', dict(WindowCenter=100, WindowWidth=50))):
        ds = pydicom.dcmread(write_dicom(tmp_path / f'{name}.dcm', RAMP12, bits_stored=12,
                                         **elements))
        assert _linear_map(pixel_array(ds), ds, 'MONOCHROME2') is None


# ----------------------------------------------------------------------------- DICOM errors
def truncated_copy(tmp_path):
    data = open(bundled('CT_small.dcm'), 'rb').read()
    path = tmp_path / 'ct_truncated.dcm'
    path.write_bytes(data[:len(data) - 10000])
    return str(path)


def unsupported_syntax(tmp_path):
    ds = pydicom.dcmread(bundled('MR_small_jp2klossless.dcm'))
    ds.file_meta.TransferSyntaxUID = '1.2.840.10008.1.2.4.100'  # MPEG2: no decoder exists
    ds.save_as(tmp_path / 'mpeg2.dcm')
    return str(tmp_path / 'mpeg2.dcm')


def zero_window_width(tmp_path):
    return write_dicom(tmp_path / 'ww0.dcm', RAMP12, WindowCenter=10, WindowWidth=0)


@pytest.mark.parametrize('make_path,reason', [
    (lambda tmp: bundled('rtplan.dcm'), r'no \(7FE0,0010\) Pixel Data.*RT Plan Storage'),
    (lambda tmp: bundled('MR_truncated.dcm'), 'less than expected'),
    (truncated_copy, 'number of bytes of pixel data is less than expected'),
    (lambda tmp: bundled('JPEG2000-embedded-sequence-delimiter.dcm'),
     r'cannot be decoded \(transfer syntax JPEG 2000'),
    (unsupported_syntax, r'MPEG2 Main Profile.*not supported'),
    (zero_window_width, 'cannot apply its palette/Modality/VOI LUT.*Window Width'),
    (lambda tmp: write_without_meta(bundled('MR_small_RLE.dcm'), tmp / 'rle.dcm', False),
     'compressed .* no Transfer Syntax UID'),
])
def test_dicom_errors_name_file_and_reason(tmp_path, make_path, reason):
    path = make_path(tmp_path)
    with pytest.raises(CXRImageError, match=reason) as info:
        read_cxr_image(path)
    assert path in str(info.value) and isinstance(info.value, ValueError)


# ----------------------------------------------------------------------------- PNG / JPEG
def test_png_8_and_16_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    for dtype, bits in ((np.uint8, 8), (np.uint16, 16)):
        pixels = rng.integers(0, np.iinfo(dtype).max, (24, 40), endpoint=True, dtype=dtype)
        path = str(tmp_path / f'grey{bits}.png')
        cv2.imwrite(path, pixels)
        img, meta = read_cxr_image(path)
        np.testing.assert_array_equal(img, pixels)
        assert meta == dict(pixel_spacing=None, photometric='MONOCHROME2', bits_stored=bits,
                            source_format='png', stored_map=None,
                            **full_resolution(img.shape))


def test_png_colour_becomes_luma(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    cv2.imwrite(str(tmp_path / 'rgb.png'), rgb[..., ::-1])  # OpenCV writes BGR
    img, meta = read_cxr_image(str(tmp_path / 'rgb.png'))
    np.testing.assert_allclose(img, 0.299 * 200 + 0.587 * 100 + 0.114 * 50, atol=1e-3)
    assert meta['photometric'] == 'RGB'


def test_jpeg_close_to_source(tmp_path):
    pixels = np.tile(np.linspace(0, 255, 64), (48, 1)).astype(np.uint8)
    for name in ('a.jpg', 'b.jpeg'):
        cv2.imwrite(str(tmp_path / name), pixels, [cv2.IMWRITE_JPEG_QUALITY, 100])
        img, meta = read_cxr_image(str(tmp_path / name))
        assert img.shape == (48, 64) and np.abs(img - pixels).max() <= 2
        assert meta['source_format'] == 'jpeg' and meta['bits_stored'] == 8


def test_content_wins_over_extension(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    cv2.imwrite(str(tmp_path / 'x.png'), pixels)
    misnamed = tmp_path / 'x.dcm'
    misnamed.write_bytes((tmp_path / 'x.png').read_bytes())
    img, meta = read_cxr_image(str(misnamed))
    np.testing.assert_array_equal(img, pixels)
    assert meta['source_format'] == 'png'


# ----------------------------------------------------------------------------- MHA / NRRD
@pytest.mark.parametrize('name,source_format', [
    ('node.mha', 'metaimage'), ('node.mhd', 'metaimage'), ('node.nrrd', 'nrrd')])
def test_sitk_formats_exact_with_spacing(tmp_path, name, source_format):
    pixels = np.arange(6 * 5, dtype=np.int16).reshape(6, 5) * 97 - 500
    image = sitk.GetImageFromArray(pixels)
    image.SetSpacing((0.25, 0.5))  # (x = col, y = row)
    sitk.WriteImage(image, str(tmp_path / name))
    img, meta = read_cxr_image(str(tmp_path / name))
    np.testing.assert_array_equal(img, pixels)
    assert meta == dict(pixel_spacing=(0.5, 0.25), photometric='MONOCHROME2', bits_stored=16,
                        source_format=source_format, stored_map=None,
                        **full_resolution(img.shape))


def test_sitk_single_slice_volume(tmp_path):
    pixels = np.arange(20, dtype=np.uint16).reshape(1, 4, 5)
    sitk.WriteImage(sitk.GetImageFromArray(pixels), str(tmp_path / 'slice.mha'))
    img, _ = read_cxr_image(str(tmp_path / 'slice.mha'))
    np.testing.assert_array_equal(img, pixels[0])


def test_sitk_volume_rejected(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.uint16)),
                    str(tmp_path / 'vol.mha'))
    with pytest.raises(CXRImageError, match=r'vol\.mha.*2-D image or one slice.*\(5, 4, 3\)'):
        read_cxr_image(str(tmp_path / 'vol.mha'))


# ----------------------------------------------------------------------------- JSRT raw
def test_jsrt_img_inverted(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 4095, (64, 64), endpoint=True).astype('>u2')
    (tmp_path / 'JPCLN001.IMG').write_bytes(pixels.tobytes())
    img, meta = read_cxr_image(str(tmp_path / 'JPCLN001.IMG'))
    np.testing.assert_array_equal(img, 4095 - pixels.astype(np.int64))
    assert meta == dict(pixel_spacing=None, photometric='MONOCHROME1', bits_stored=12,
                        source_format='jsrt', stored_map=None,
                        **full_resolution(img.shape))


def test_jsrt_full_size_has_spacing(tmp_path):
    (tmp_path / 'JPCNN001.IMG').write_bytes(np.full((2048, 2048), 4000, '>u2').tobytes())
    img, meta = read_cxr_image(str(tmp_path / 'JPCNN001.IMG'))
    assert img.shape == (2048, 2048) and img[0, 0] == 95
    assert meta['pixel_spacing'] == (0.175, 0.175)


@pytest.mark.parametrize('data,reason', [
    (np.zeros(1000, '>u2').tobytes(), 'square big-endian uint16.*2000 bytes'),
    (b'\0' * 99, 'has 99 bytes'),
    (b'', 'has 0 bytes'),
    (np.full((4, 4), 4096, '>u2').tobytes(), 'value 4096 exceeds 12 bits'),
])
def test_jsrt_bad_files(tmp_path, data, reason):
    (tmp_path / 'bad.IMG').write_bytes(data)
    with pytest.raises(CXRImageError, match=rf'bad\.IMG.*{reason}'):
        read_cxr_image(str(tmp_path / 'bad.IMG'))


# ----------------------------------------------------------------------------- other errors
def test_missing_file(tmp_path):
    with pytest.raises(CXRImageError, match=r'nowhere\.png.*no such file'):
        read_cxr_image(str(tmp_path / 'nowhere.png'))


def test_unknown_format(tmp_path):
    (tmp_path / 'notes.txt').write_text('not an image at all\n' * 20)
    with pytest.raises(CXRImageError, match=r"notes\.txt.*unknown image format: extension '.txt'"):
        read_cxr_image(str(tmp_path / 'notes.txt'))


def test_corrupt_png(tmp_path):
    cv2.imwrite(str(tmp_path / 'ok.png'), np.zeros((16, 16), np.uint8))
    (tmp_path / 'cut.png').write_bytes((tmp_path / 'ok.png').read_bytes()[:40])
    with pytest.raises(CXRImageError, match=r'cut\.png.*OpenCV cannot decode'):
        read_cxr_image(str(tmp_path / 'cut.png'))


def test_keep_stored_returns_the_stored_values_and_their_map(tmp_path):
    stored = (np.arange(40, dtype=np.uint16) * 100).reshape(5, 8)
    mono1 = write_dicom(tmp_path / 'm1.dcm', stored, 'MONOCHROME1', 12, RescaleSlope=2,
                        RescaleIntercept=-1000)
    cv2.imwrite(str(tmp_path / 'grey.png'), stored)
    (tmp_path / 'JPCLN001.IMG').write_bytes(stored[:5, :5].astype('>u2').tobytes())
    for path, expected_map in ((mono1, (-2., 2 * 4095 - 1000.)),
                               (str(tmp_path / 'grey.png'), (1., 0.)),
                               (str(tmp_path / 'JPCLN001.IMG'), (-1., 4095.))):
        kept, meta = read_cxr_image(path, keep_stored=True)
        assert kept.dtype == np.uint16 and meta['stored_map'] == expected_map
        np.testing.assert_array_equal(kept, stored[:kept.shape[0], :kept.shape[1]])
        img, plain_meta = read_cxr_image(path)
        assert plain_meta['stored_map'] is None and img.dtype == np.float32
        np.testing.assert_array_equal(apply_linear(kept, *meta['stored_map']), img)
    # colour, and a window (not linear): float intensities, no map
    cv2.imwrite(str(tmp_path / 'rgb.png'), np.dstack([stored.astype(np.uint8)] * 3))
    windowed = write_dicom(tmp_path / 'w.dcm', stored, bits_stored=12, WindowCenter=2000,
                           WindowWidth=1000)
    for path in (str(tmp_path / 'rgb.png'), windowed):
        img, meta = read_cxr_image(path, keep_stored=True)
        assert img.dtype == np.float32 and meta['stored_map'] is None


# ----------------------------------------------------------------------------- reduced decoding
def smooth(height, width, top):
    """A smooth image of 0..top stored values (JPEG keeps it close)."""
    y, x = np.mgrid[0:height, 0:width]
    return (top * (0.2 + 0.3 * np.sin(x / 17.) ** 2 + 0.4 * y / height)).astype(
        np.uint8 if top < 256 else np.uint16)


def test_reduction_is_the_largest_keeping_the_long_side():
    assert reduction_for((3056, 2544), 512) == 4  # 764 px; 1/8 would give 382
    assert reduction_for((1024, 1024), 512) == 2
    assert reduction_for((1024, 1023), 128) == 8
    assert reduction_for((390, 320), 512) == 1 and reduction_for((3056, 2544), None) == 1


@pytest.mark.parametrize('kind,size,bits,k', [
    ('jpeg', (300, 260), 8, 4),  # 75 x 65 at 1/4; 1/8 would give 38 < 64
    (JPEGBaseline8Bit, (200, 160), 8, 2),
    (JPEG2000Lossless, (256, 192), 12, 2),
    (JPEG2000Lossless, (201, 161), 12, 2),  # 1/4 of 161 px: Pillow, openjpeg give 40, 41
])
def test_reduced_decoding_is_the_area_average(tmp_path, kind, size, bits, k):
    pixels = smooth(*size, (1 << bits) - 1)
    if kind == 'jpeg':
        path = str(tmp_path / 'x.jpg')
        cv2.imwrite(path, pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        path = write_compressed_grey_dicom(tmp_path / 'x.dcm', pixels, kind, bits_stored=bits)
    full, meta_full = read_cxr_image(path, keep_stored=True)
    reduced, meta = read_cxr_image(path, keep_stored=True,
                                   min_decoded_side=max(size) // 4 + (k == 2))
    assert meta_full['scale'] == (1., 1.) and full.shape == size
    assert reduced.shape == (-(-size[0] // k), -(-size[1] // k)) and reduced.dtype == full.dtype
    assert meta['original_shape'] == size and meta['scale'] == (1 / k, 1 / k)
    assert meta['stored_map'] == meta_full['stored_map'] == (1., 0.)
    area = cv2.resize(full.astype(np.float32), reduced.shape[::-1], interpolation=cv2.INTER_AREA)
    step = (1 << bits) / 256  # one 8-bit grey level
    assert np.abs(reduced - area).mean() < 1.5 * step
    if kind == 'jpeg':
        np.testing.assert_array_equal(read_cxr_image(path, min_decoded_side=300)[0], full)


def test_reduced_decoding_leaves_other_formats_whole(tmp_path):
    path = str(tmp_path / 'x.png')
    cv2.imwrite(path, smooth(128, 96, 255))
    img, meta = read_cxr_image(path, min_decoded_side=16)
    assert img.shape == (128, 96) and meta['scale'] == (1., 1.)
    with pytest.raises(ValueError, match='min_decoded_side'):
        read_cxr_image(path, min_decoded_side=0)
