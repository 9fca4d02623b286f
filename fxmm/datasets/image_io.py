"""Read a chest X-ray of any stored format into one float image.

:func:`read_cxr_image` returns the raw intensities as float32 ``(H, W)`` with *higher = brighter*
(more attenuating, as a radiologist views the film), whatever the file stores; or, with
``keep_stored=True``, the stored integers and the linear map to those intensities when there
is one, so that a loader can crop and resize before converting
(``LoadCXRImage(defer_norm=True)``):

- DICOM (``.dcm``, ``.dicom``, the ``DICM`` preamble, or a bare data set without file meta),
  through pydicom: first frame only, Modality LUT / Rescale Slope-Intercept, then VOI LUT or
  Window Center-Width, MONOCHROME1 inverted, colour converted to grey. Compressed transfer
  syntaxes use the installed pixel-data plugins (pylibjpeg with -libjpeg, -openjpeg, -rle).
  The common case (uncompressed little-endian 8/16-bit grey, no LUT or window) is read from
  the Pixel Data bytes and rescaled into float32 directly, with the same values.
- PNG (8/16-bit) and JPEG through OpenCV, colour converted to grey.
- MetaImage (``.mha``, ``.mhd``) and NRRD through SimpleITK: 2-D, or 3-D with a single slice.
- JSRT raw ``.IMG``: square big-endian uint16 without header, 12 bits used, stored inverted.
- A path inside a prepared image store (:mod:`fxmm.datasets.image_store`): the store's
  reduced copy of the image, with the original's size, intensity map and range.

With ``min_decoded_side``, JPEG files, 8-bit JPEG baseline DICOM and JPEG 2000 DICOM are
decoded at a reduced scale, 1/2, 1/4 or 1/8 (JPEG's DCT scaling through OpenCV's
``IMREAD_REDUCED_GRAYSCALE_*``, JPEG 2000's resolution levels through Pillow's ``reduce``),
the smallest that keeps the long side at least ``min_decoded_side`` pixels: the decoder
skips most of its work. Other formats are decoded whole.

Every failure raises :class:`CXRImageError`, a :class:`ValueError` whose message names the file
and the reason.
"""
import io
import math
import os.path as osp
from typing import List, Optional, Tuple

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.encaps import generate_frames
from pydicom.uid import (JPEG2000, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit)

#: Pixel pitch of the JSRT digitiser in mm (JSRT database: 2048 x 2048, 0.175 mm).
JSRT_PIXEL_SPACING = 0.175
JSRT_SIDE = 2048
JSRT_MAX_VALUE = 4095  # 12 bits used

# (offset, signature, format); content wins over the file name.
_MAGIC = (
    (0, b'\x89PNG\r\n\x1a\n', 'png'),
    (0, b'\xff\xd8\xff', 'jpeg'),
    (128, b'DICM', 'dicom'),
    (0, b'NRRD', 'nrrd'),
    (0, b'ObjectType', 'metaimage'),
)
# file suffix -> format, for files without a signature (and the inferencer's folder listing)
FORMAT_OF_SUFFIX = {
    '.dcm': 'dicom', '.dicom': 'dicom',
    '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg',
    '.mha': 'metaimage', '.mhd': 'metaimage', '.nrrd': 'nrrd', '.nhdr': 'nrrd',
    '.img': 'jsrt',
}
# (channel order, number of channels) -> OpenCV conversion code
_TO_GREY = {('RGB', 3): cv2.COLOR_RGB2GRAY, ('RGB', 4): cv2.COLOR_RGBA2GRAY,
            ('BGR', 3): cv2.COLOR_BGR2GRAY, ('BGR', 4): cv2.COLOR_BGRA2GRAY}


#: stored types OpenCV resizes: ``read_cxr_image(keep_stored=True)`` returns them as they are
RESIZABLE_STORED_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))


class CXRImageError(ValueError):
    """An image file that cannot be read; the message names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f'cannot read image {path!r}: {reason}')
        self.path = path
        self.reason = reason


def read_cxr_image(path: str, keep_stored: bool = False,
                   min_decoded_side: Optional[int] = None) -> Tuple[np.ndarray, dict]:
    """Read a chest X-ray file as raw float intensities, higher = brighter.

    Args:
        path (str): Local path of a DICOM, PNG, JPEG, MHA/MHD/NRRD or JSRT ``.IMG`` file, or
            ``<store>/<img_path>`` of a prepared image store.
        keep_stored (bool): when the intensities are a linear map of stored integers of a type
            in :data:`RESIZABLE_STORED_TYPES` (grey PNG/JPEG/MHA, JSRT, DICOM without LUT or
            window: most radiographs; every store image), return those stored values and the
            map in ``meta['stored_map']`` instead of converting the whole image to float32.
            Defaults to False.
        min_decoded_side (int, optional): decode a JPEG (file, 8-bit baseline DICOM) or JPEG
            2000 DICOM at the smallest of the scales 1/8, 1/4, 1/2 whose long side is still
            at least this many pixels (see the module docstring). None: full resolution.

    Returns:
        tuple[np.ndarray, dict]: The image, float32 of shape (h, w) (or the stored integers,
        see ``keep_stored``), and its meta:

        - ``pixel_spacing`` (tuple[float, float] | None): (row, col) spacing in mm.
        - ``photometric`` (str): photometric interpretation of the *stored* data
          (``'MONOCHROME1'`` for inverted storage, ``'RGB'`` etc. for colour); the returned
          image is always grey with higher = brighter.
        - ``bits_stored`` (int | None): bits per stored sample (None for float data).
        - ``source_format`` (str): ``'dicom'``, ``'png'``, ``'jpeg'``, ``'metaimage'``,
          ``'nrrd'``, ``'jsrt'`` or ``'prepared'`` (a store image).
        - ``stored_map`` (tuple[float, float] | None): ``(slope, intercept)`` when the image
          holds stored values: intensity = ``slope * stored + intercept``; else None.
        - ``original_shape`` (tuple[int, int]): (H, W) of the image at full resolution:
          the image's own shape, or larger for a store image or a reduced decoding.
        - ``scale`` (tuple[float, float]): (w / W, h / H), image pixels per original pixel:
          (1, 1) at full resolution, 1 / the reduction for a reduced decoding (whose size
          rounds up).
        - ``value_range`` (tuple[float, float] | None): for a store image, the minimum and
          maximum of the whole original image, in the returned values (stored or not), to
          normalise it as the original; None otherwise (the image's own range is the
          original's, or close to it after a reduced decoding).

    Raises:
        CXRImageError: The file is missing, of an unknown format, or cannot be decoded.
    """
    path = str(path)
    if min_decoded_side is not None and not (isinstance(min_decoded_side, int)
                                             and min_decoded_side > 0):
        raise ValueError(f'min_decoded_side must be a positive int or None, got '
                         f'{min_decoded_side!r}')
    if not osp.isfile(path):
        img, meta = _read_store_image(path)
        fmt = 'prepared'
    else:
        fmt = _detect_format(path)
        if fmt is None:
            # a bare DICOM data set (no preamble, no known extension) is found only by parsing
            try:
                img, meta = _read_dicom(path, min_decoded_side)
            except CXRImageError as e:
                raise CXRImageError(
                    path, f'unknown image format: extension {osp.splitext(path)[1]!r}, no '
                    f'PNG/JPEG/DICOM/NRRD/MetaImage signature, and as DICOM: {e.reason}') from e
            fmt = 'dicom'
        else:
            img, meta = _READERS[fmt](path, min_decoded_side)
    meta['source_format'] = fmt
    meta.setdefault('original_shape', img.shape[:2])
    meta.setdefault('scale', (1., 1.))
    meta.setdefault('value_range', None)
    stored_map = meta.pop('stored_map', None)
    if stored_map is not None and keep_stored and img.dtype in RESIZABLE_STORED_TYPES:
        meta['stored_map'] = stored_map
        return img, meta
    meta['stored_map'] = None
    if stored_map is not None:
        meta['value_range'] = mapped_range(meta['value_range'], stored_map)
        return apply_linear(img, *stored_map), meta
    return img.astype(np.float32, copy=False), meta


def mapped_range(value_range: Optional[Tuple[float, float]],
                 stored_map: Tuple[float, float]) -> Optional[Tuple[float, float]]:
    """The (min, max) of stored values mapped to intensities by (slope, intercept)."""
    if value_range is None:
        return None
    slope, intercept = stored_map
    return tuple(sorted(slope * float(v) + intercept for v in value_range))


def _read_store_image(path: str) -> Tuple[np.ndarray, dict]:
    """The image a path inside a prepared image store names; 'no such file' elsewhere."""
    from .image_store import find_store  # the store module imports this one
    found = find_store(path)
    if found is None:
        raise CXRImageError(path, 'no such file')
    store, key = found
    return store.read(key)


def reduction_for(size: Tuple[int, int], min_side: Optional[int]) -> int:
    """The largest of 8, 4, 2 whose reduced long side (rounded up) is still >= ``min_side``.

    Args:
        size (tuple[int, int]): (H, W) (or (W, H)) of the image at full resolution.
        min_side (int, optional): the smallest long side wanted; None: no reduction.

    Returns:
        int: the reduction, 1 when even 1/2 would go below ``min_side``.
    """
    if min_side is None:
        return 1
    long_side = max(size)
    return next((k for k in (8, 4, 2) if -(-long_side // k) >= min_side), 1)


def _detect_format(path: str) -> Optional[str]:
    """Format from the file's signature, else its extension; None if neither tells."""
    with open(path, 'rb') as f:
        head = f.read(132)
    for offset, signature, fmt in _MAGIC:
        if head[offset:offset + len(signature)] == signature:
            return fmt
    return FORMAT_OF_SUFFIX.get(osp.splitext(path)[1].lower())


def _to_grey(img: np.ndarray, order: str = 'RGB') -> np.ndarray:
    """Colour to grey as float32 (H, W).

    Args:
        img (np.ndarray): (H, W) grey, (H, W, 1|2) grey [+ alpha], or (H, W, 3|4) colour
            [+ alpha] with channels in ``order``.
        order (str): ``'RGB'`` (DICOM, SimpleITK) or ``'BGR'`` (OpenCV).

    Returns:
        np.ndarray: float32 (H, W); colour becomes luma with ITU-R BT.601 weights.
    """
    img = img.astype(np.float32, copy=False)
    if img.ndim == 2:
        return img
    if img.shape[2] <= 2:
        return img[..., 0]
    return cv2.cvtColor(img, _TO_GREY[order, img.shape[2]])


# ----------------------------------------------------------------------------- DICOM
def _read_dicom(path: str, min_decoded_side: Optional[int] = None) -> Tuple[np.ndarray, dict]:
    """Read the first frame of a DICOM file (with or without preamble and file meta),
    reduced for ``min_decoded_side`` when its syntax allows it (:func:`_reduced_frame`)."""
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as e:  # pydicom raises many types on corrupt input
        raise CXRImageError(path, f'not a readable DICOM file ({type(e).__name__}: {e})') from e
    if _PIXEL_DATA not in ds:
        sop_class = getattr(ds.get('SOPClassUID'), 'name', 'unknown')
        raise CXRImageError(
            path, f'no (7FE0,0010) Pixel Data element (SOP class: {sop_class}): not an image, '
            'truncated before its pixel data, or not DICOM at all')
    _set_missing_transfer_syntax(ds, path)
    photometric = _text_values(ds, _PHOTOMETRIC)
    photometric = 'MONOCHROME2' if photometric is None else '\\'.join(photometric).upper()
    reduced = None
    try:
        if photometric in ('MONOCHROME1', 'MONOCHROME2'):
            reduced = _reduced_frame(ds, min_decoded_side)
            arr = reduced[0] if reduced else _native_grey_frame(ds)
        else:
            arr = None
        if arr is None:
            arr = pixel_array(ds, index=0)  # first frame only; unused high bits corrected
    except Exception as e:  # truncated data, missing plugin, bad group 0028 values, ...
        ts = ds.file_meta.get('TransferSyntaxUID')
        ts_name = getattr(ts, 'name', ts)
        raise CXRImageError(
            path, f'pixel data cannot be decoded (transfer syntax {ts_name}): '
            f'{type(e).__name__}: {e}') from e

    meta = dict(pixel_spacing=_dicom_spacing(ds), photometric=photometric,
                bits_stored=_us_value(ds, _BITS_STORED))
    if reduced:
        meta.update(original_shape=reduced[1], scale=(1 / reduced[2], 1 / reduced[2]))
    try:
        if photometric == 'PALETTE COLOR':
            arr = apply_color_lut(arr, ds)  # (H, W) indices -> (H, W, 3) RGB
        if arr.ndim == 3:
            return _to_grey(arr), meta
        linear = _linear_map(arr, ds, photometric)
        if linear is not None:
            return arr, dict(meta, stored_map=linear)
        # a Modality LUT, a VOI LUT or a window: pydicom applies them
        img = _grey_pipeline(arr if arr.flags.writeable else arr.copy(), ds)
        if photometric == 'MONOCHROME1':
            lo, hi = _output_range(ds)
            img = lo + hi - img
    except Exception as e:  # invalid LUT descriptor, window width < 1, ...
        raise CXRImageError(
            path, f'cannot apply its palette/Modality/VOI LUT: {type(e).__name__}: {e}') from e
    return img, meta


def _set_missing_transfer_syntax(ds: pydicom.Dataset, path: str) -> None:
    """Give a data set without (0002,0010) the native syntax it was parsed with."""
    if ds.file_meta.get('TransferSyntaxUID'):
        return
    if ds['PixelData'].is_undefined_length:
        raise CXRImageError(
            path, 'compressed (encapsulated) pixel data but no Transfer Syntax UID '
            'in the file meta, so the codec is unknown')
    implicit, little = ds.original_encoding
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else
        ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _reduced_frame(ds: pydicom.Dataset, min_side: Optional[int]
                   ) -> Optional[Tuple[np.ndarray, Tuple[int, int], int]]:
    """The first grey frame of an 8-bit JPEG baseline or a JPEG 2000 data set, decoded at
    the reduction :func:`reduction_for` gives (OpenCV's DCT scaling / Pillow's resolution
    levels), or None (then the frame is decoded whole): no ``min_side``, no reduction, another
    syntax or layout, or a codestream the reduced decoders do not take.

    Returns:
        tuple | None: the stored values (uint8 / uint16, (ceil(H / k), ceil(W / k))), the full
        size (H, W) and the reduction k.
    """
    syntax = ds.file_meta.get('TransferSyntaxUID')
    if min_side is None or syntax not in (JPEGBaseline8Bit, JPEG2000Lossless, JPEG2000):
        return None
    rows, cols, allocated, _, representation, samples = (
        _us_value(ds, tag) for tag in _FRAME_TAGS)
    if None in (rows, cols) or samples not in (None, 1) or representation == 1:
        return None
    k = reduction_for((rows, cols), min_side)
    if k == 1:
        return None
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    if syntax == JPEGBaseline8Bit:
        arr = _imdecode_reduced(frame, k) if allocated == 8 else None
    else:
        arr, k = _j2k_reduced(frame, k)
    if arr is None or k == 1 or arr.shape != (-(-rows // k), -(-cols // k)):
        return None
    return arr, (rows, cols), k


def _imdecode_reduced(data: bytes, k: int) -> Optional[np.ndarray]:
    """An 8-bit JPEG decoded grey at 1/k by DCT scaling (colour gives its luma)."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), _CV2_REDUCED_GREY[k])


_CV2_REDUCED_GREY = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                     8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _j2k_reduced(codestream: bytes, k: int) -> Tuple[Optional[np.ndarray], int]:
    """An unsigned one-component JPEG 2000 codestream decoded at 1/k (k a power of 2) or
    less by Pillow, which discards resolution levels; (None, 1) for other codestreams.

    Pillow sizes the output ``(W + k/2) // k`` where openjpeg decodes ``ceil(W / k)``; a
    size where the two differ fails to decode, so the largest reduction <= k where they
    agree is used. Pillow widens 9-16 bit samples to 16 bits (``v << (16 - bits)``); the
    shift is undone.

    Returns:
        tuple[np.ndarray | None, int]: the decoded values and the reduction used.
    """
    start = codestream.find(b'\xff\x4f\xff\x51')  # SOC, SIZ (also inside a JP2 wrapper)
    if start < 0 or len(codestream) < start + 43:
        return None, 1
    siz = codestream[start + 4:]
    xsiz, ysiz, x0, y0 = (int.from_bytes(siz[i:i + 4], 'big') for i in (4, 8, 12, 16))
    components, depth = int.from_bytes(siz[36:38], 'big'), siz[38]
    bits, signed = (depth & 0x7F) + 1, bool(depth & 0x80)
    if components != 1 or signed or bits > 16 or x0 or y0:
        return None, 1
    while k > 1 and any(-(-n // k) != (n + k // 2) // k for n in (xsiz, ysiz)):
        k //= 2
    if k == 1:
        return None, 1
    with Image.open(io.BytesIO(codestream)) as im:
        im.reduce = k.bit_length() - 1
        arr = np.asarray(im)
    if arr.dtype == np.uint16 and bits < 16:
        arr = arr >> (16 - bits)
    return arr, k


_BITS_STORED, _PIXEL_REPRESENTATION = 0x00280101, 0x00280103
# Rows, Columns, Bits Allocated, Bits Stored, Pixel Representation, Samples per Pixel
_FRAME_TAGS = (0x00280010, 0x00280011, 0x00280100, _BITS_STORED, _PIXEL_REPRESENTATION,
               0x00280002)
_PIXEL_DATA = 0x7FE00010
_RESCALE_INTERCEPT, _RESCALE_SLOPE = 0x00281052, 0x00281053
_PHOTOMETRIC, _PIXEL_SPACING, _IMAGER_PIXEL_SPACING = 0x00280004, 0x00280030, 0x00181164
# Modality LUT Sequence, VOI LUT Sequence, Window Center, Window Width
_LUT_AND_WINDOW_TAGS = (0x00283000, 0x00283010, 0x00281050, 0x00281051)


def _us_value(ds: pydicom.Dataset, tag: int) -> Optional[int]:
    """A one-valued US element (Rows, Bits Stored, ...) read from its raw bytes.

    pydicom converts an element on first access, 14 us each, which for the handful a frame
    needs costs half as much as parsing the file; a raw little-endian 2-byte value is decoded
    here instead. Anything else (already converted, big endian, another length) goes
    through pydicom.

    Returns:
        int | None: the value; None when the element is absent or empty.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and elem.is_little_endian and elem.length == 2 \
            and elem.VR in ('US', None) and isinstance(elem.value, bytes):
        return int.from_bytes(elem.value, 'little')
    value = ds[tag].value
    return None if value is None or value == '' else int(value)


def _text_values(ds: pydicom.Dataset, tag: int) -> Optional[List[str]]:
    """The values of a text element (CS, DS, ...), read from its raw bytes as
    :func:`_us_value` does: split at backslashes, stripped of padding.

    Returns:
        list[str] | None: the values (``[]`` when the element is empty); None when absent.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement) and isinstance(elem.value, bytes):
        text = elem.value.decode('ascii', 'replace').strip(' \0')
        return [v.strip(' \0') for v in text.split('\\')] if text else []
    value = ds[tag].value
    if value is None or value == '':
        return []
    return [str(v) for v in value] if isinstance(value, MultiValue) else [str(value)]


def _native_grey_frame(ds: pydicom.Dataset) -> Optional[np.ndarray]:
    """First frame of uncompressed little-endian 8/16-bit grey pixel data, else None.

    The common case, read straight from the Pixel Data bytes without pydicom's general decoder
    (whose option handling and copies cost as much as the file parsing): the values equal
    ``pydicom.pixels.pixel_array(ds, index=0)``, unused high bits corrected (masked, or
    sign-extended when signed). None (then pydicom decodes) for every other transfer syntax or
    layout, and for pixel data shorter than one frame, so that pydicom names the problem.

    Returns:
        np.ndarray | None: (Rows, Columns) ``uint8``/``uint16``/``int8``/``int16``; read-only
        (a view on the bytes) when no unused high bit needs clearing.
    """
    if ds.file_meta.get('TransferSyntaxUID') not in (ExplicitVRLittleEndian,
                                                      ImplicitVRLittleEndian):
        return None
    try:
        rows, cols, allocated, stored, representation, samples = (
            _us_value(ds, tag) for tag in _FRAME_TAGS)
    except (TypeError, ValueError):  # a malformed element: pydicom names it
        return None
    if None in (rows, cols, allocated, stored, representation):  # missing: pydicom names it
        return None
    signed = representation == 1
    if samples not in (None, 1) or allocated not in (8, 16) or not 0 < stored <= allocated:
        return None
    data = ds.get_item(_PIXEL_DATA).value  # raw bytes: no element conversion
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    if (rows < 1 or cols < 1 or not isinstance(data, bytes)
            or len(data) < rows * cols * dtype.itemsize):
        return None
    arr = np.frombuffer(data, dtype, count=rows * cols).reshape(rows, cols)
    if stored < allocated and signed:  # as pydicom: shift the unused bits out and back
        arr = np.left_shift(arr, allocated - stored)
        np.right_shift(arr, allocated - stored, out=arr)  # arithmetic: sign-extends
    elif stored < allocated and arr.max() >> stored:  # unsigned: mask the unused bits (a
        # new image-sized array, so only when some are set: one read-only pass decides)
        arr = np.bitwise_and(arr, (1 << stored) - 1)
    return arr


def _linear_map(arr: np.ndarray, ds: pydicom.Dataset,
                photometric: str) -> Optional[Tuple[float, float]]:
    """``(slope, intercept)`` when the grey pipeline is linear, else None.

    Most radiographs have neither a Modality LUT nor a VOI LUT or window, only an optional
    Rescale Slope/Intercept; for them :func:`_grey_pipeline` and the MONOCHROME1 inversion
    reduce to ``img = slope * arr + intercept``.

    Args:
        arr (np.ndarray): (H, W) stored values.
        ds (pydicom.Dataset): its data set.
        photometric (str): its Photometric Interpretation.

    Returns:
        tuple[float, float] | None: None when the file has a Modality LUT, a VOI LUT or a
        window, or values of more than 16 bits (exact only in float64).
    """
    if arr.dtype.kind not in 'iu' or arr.dtype.itemsize > 2:
        return None
    # a cheap check for absence first: an element's first access converts it (14 us)
    if any(tag in ds for tag in _LUT_AND_WINDOW_TAGS) and (
            ds.get('ModalityLUTSequence') or ds.get('VOILUTSequence')
            or ds.get('WindowCenter') is not None or ds.get('WindowWidth') is not None):
        return None
    slope, intercept = 1., 0.
    if _RESCALE_SLOPE in ds and _RESCALE_INTERCEPT in ds:
        values = _text_values(ds, _RESCALE_SLOPE), _text_values(ds, _RESCALE_INTERCEPT)
        if any(len(v) != 1 for v in values):  # empty or multi-valued: pydicom names it
            return None
        try:
            slope, intercept = float(values[0][0]), float(values[1][0])
        except ValueError:  # not a decimal string: pydicom names it
            return None
    if photometric == 'MONOCHROME1':
        # inverted within the rescaled range of every value that Bits Stored allows:
        # with lo + hi = slope * (vmin + vmax) + 2 * intercept:
        # lo + hi - (slope * v + intercept) = -slope * v + slope * (vmin + vmax) + intercept
        vmin, vmax = _stored_range(ds)
        slope, intercept = -slope, slope * (vmin + vmax) + intercept
    return slope, intercept


def apply_linear(arr: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """``slope * arr + intercept`` of integer stored values (at most 16 bits) as float32.

    With integer slope and intercept (the usual case: 1 and 0, or CT-like -1024) every value
    is an integer below 2**24, so it is computed in float32 (or not at all) and equals the
    float64 result exactly. Other slopes and intercepts are computed in float64 and rounded
    once to float32.

    Args:
        arr (np.ndarray): stored values, any shape, an integer type of at most 16 bits.
        slope (float): the factor.
        intercept (float): the offset.

    Returns:
        np.ndarray: float32, the shape of ``arr``; a new array.
    """
    info = np.iinfo(arr.dtype)
    if not (float(slope).is_integer() and float(intercept).is_integer()
            and abs(slope) * max(-info.min, info.max) + abs(intercept) < 1 << 24):
        return (arr * float(slope) + float(intercept)).astype(np.float32)  # float64, like pydicom
    # exact in float32: integers below 2**24 throughout
    # a plain conversion, then in-place float32 arithmetic (numpy's mixed-type ufuncs with a
    # float32 output are several times slower than astype)
    img = arr.astype(np.float32)
    if slope == -1:
        return np.subtract(np.float32(intercept), img, out=img)
    if slope != 1:
        img *= np.float32(slope)
    if intercept:
        img += np.float32(intercept)
    return img


def _grey_pipeline(arr: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """Modality LUT (or rescale), then VOI LUT (or windowing), as pydicom defines them."""
    arr = apply_modality_lut(arr, ds)
    if ds.get('VOILUTSequence') and arr.dtype.kind == 'f':
        # a VOI LUT is indexed by integer input values
        arr = np.rint(arr).astype(np.int64)
    return apply_voi_lut(arr, ds)


def _output_range(ds: pydicom.Dataset) -> Tuple[float, float]:
    """Range of :func:`_grey_pipeline` over every value that Bits Stored allows.

    MONOCHROME1 is inverted within this range, so the result does not depend on the image
    content (a LUT need not be monotonic, hence every value when there are at most 2**16).
    """
    lo, hi = _stored_range(ds)
    values = np.arange(lo, hi + 1) if hi - lo < 1 << 16 else np.array([lo, hi])
    out = _grey_pipeline(values, ds)
    return float(out.min()), float(out.max())


def _stored_range(ds: pydicom.Dataset) -> Tuple[int, int]:
    """(min, max) of the values that Bits Stored and Pixel Representation allow."""
    bits = _us_value(ds, _BITS_STORED)
    if bits is None:
        raise ValueError('no Bits Stored (0028,0101)')
    if _us_value(ds, _PIXEL_REPRESENTATION) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _dicom_spacing(ds: pydicom.Dataset) -> Optional[Tuple[float, float]]:
    """(row, col) mm from Pixel Spacing, else Imager Pixel Spacing (usual in CR/DX)."""
    for tag in (_PIXEL_SPACING, _IMAGER_PIXEL_SPACING):
        values = _text_values(ds, tag)
        if values is not None and len(values) == 2:
            try:
                return float(values[0]), float(values[1])
            except ValueError:  # not a decimal string: the spacing is unknown
                return None
    return None


# ----------------------------------------------------------------------------- PNG / JPEG
def _read_cv2(path: str, min_decoded_side: Optional[int] = None) -> Tuple[np.ndarray, dict]:
    """Read 8/16-bit PNG or JPEG with OpenCV at full depth; colour becomes grey."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CXRImageError(path, 'OpenCV cannot decode it (corrupt or unsupported PNG/JPEG)')
    photometric = 'RGB' if img.ndim == 3 and img.shape[2] >= 3 else 'MONOCHROME2'
    return _grey_or_stored(img, 'BGR', dict(
        pixel_spacing=None, photometric=photometric, bits_stored=img.dtype.itemsize * 8))


def _read_jpeg(path: str, min_decoded_side: Optional[int] = None) -> Tuple[np.ndarray, dict]:
    """Read a JPEG file: by :func:`_read_cv2`, or decoded grey by DCT scaling at
    :func:`reduction_for`'s reduction for ``min_decoded_side`` (its size read from the
    header by Pillow)."""
    reduced = None if min_decoded_side is None else _read_jpeg_reduced(path, min_decoded_side)
    return _read_cv2(path) if reduced is None else reduced


def _read_jpeg_reduced(path: str, min_side: int) -> Optional[Tuple[np.ndarray, dict]]:
    """See :func:`_read_jpeg`; None when the size gives no reduction."""
    try:
        with Image.open(path) as im:
            (width, height), mode = im.size, im.mode
    except (OSError, ValueError) as e:  # Pillow's error for a corrupt header
        raise CXRImageError(path, f'cannot read its JPEG header: {e}') from e
    k = reduction_for((height, width), min_side)
    if k == 1 or mode not in ('L', 'RGB', 'YCbCr', 'CMYK'):
        return None
    with open(path, 'rb') as f:
        img = _imdecode_reduced(f.read(), k)
    if img is None:
        raise CXRImageError(path, 'OpenCV cannot decode it (corrupt or unsupported JPEG)')
    return img, dict(pixel_spacing=None, photometric='MONOCHROME2' if mode == 'L' else 'RGB',
                     bits_stored=8, stored_map=(1., 0.), original_shape=(height, width),
                     scale=(1 / k, 1 / k))


def _grey_or_stored(img: np.ndarray, order: str, meta: dict) -> Tuple[np.ndarray, dict]:
    """A decoded (H, W) integer image as stored values (``stored_map`` (1, 0) in ``meta``),
    anything else through :func:`_to_grey`."""
    if img.ndim == 2 and img.dtype.kind in 'iu' and img.dtype.itemsize <= 2:
        return img, dict(meta, stored_map=(1., 0.))
    return _to_grey(img, order), meta


# ----------------------------------------------------------------------------- MHA / NRRD
def _read_sitk(path: str, min_decoded_side: Optional[int] = None) -> Tuple[np.ndarray, dict]:
    """Read a 2-D (or single-slice 3-D) MetaImage/NRRD with SimpleITK, whole."""
    import SimpleITK as sitk  # on first use: only these formats need it
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as e:
        raise CXRImageError(path, f'SimpleITK cannot read it: {e}') from e
    size = image.GetSize()  # (x, y[, z])
    if len(size) == 3 and size[2] == 1:
        image = image[:, :, 0]
    elif len(size) != 2:
        raise CXRImageError(path, f'expected a 2-D image or one slice, got size (x, y, z) {size}')
    arr = sitk.GetArrayFromImage(image)  # (H, W) or (H, W, C)
    col_spacing, row_spacing = image.GetSpacing()
    return _grey_or_stored(arr, 'RGB', dict(
        pixel_spacing=(float(row_spacing), float(col_spacing)),
        photometric='RGB' if arr.ndim == 3 and arr.shape[2] >= 3 else 'MONOCHROME2',
        bits_stored=None if arr.dtype.kind == 'f' else arr.dtype.itemsize * 8))


# ----------------------------------------------------------------------------- JSRT
def _read_jsrt(path: str, min_decoded_side: Optional[int] = None) -> Tuple[np.ndarray, dict]:
    """Read a JSRT raw image: square big-endian uint16, 12 bits, high value = dark; whole."""
    with open(path, 'rb') as f:
        data = f.read()
    side = math.isqrt(len(data) // 2)
    if len(data) == 0 or side * side * 2 != len(data):
        raise CXRImageError(
            path, f'raw JSRT .IMG must hold a square big-endian uint16 image '
            f'({JSRT_SIDE}x{JSRT_SIDE} = {JSRT_SIDE ** 2 * 2} bytes), but it has {len(data)} bytes')
    # native byte order: the stored values can then be resized and rescaled like any others
    raw = np.frombuffer(data, dtype='>u2').reshape(side, side).astype(np.uint16)
    if raw.max() > JSRT_MAX_VALUE:
        raise CXRImageError(
            path, f'value {raw.max()} exceeds 12 bits ({JSRT_MAX_VALUE}): not a JSRT raw image')
    spacing = JSRT_PIXEL_SPACING if side == JSRT_SIDE else None
    return raw, dict(pixel_spacing=(spacing, spacing) if spacing else None,
                     photometric='MONOCHROME1', bits_stored=12,
                     stored_map=(-1., float(JSRT_MAX_VALUE)))


_READERS = {'dicom': _read_dicom, 'png': _read_cv2, 'jpeg': _read_jpeg,
            'metaimage': _read_sitk, 'nrrd': _read_sitk, 'jsrt': _read_jsrt}
