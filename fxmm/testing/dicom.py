"""Minimal one-frame grey DICOM writers for tests and benchmarks: raw pixels, or compressed
(8-bit JPEG baseline, JPEG 2000 lossless)."""
import cv2
import numpy as np
from openjpeg import encode as j2k_encode
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian,
                         JPEG2000Lossless, JPEGBaseline8Bit, generate_uid)


def write_grey_dicom(path, pixels: np.ndarray, photometric: str = 'MONOCHROME2',
                     bits_stored: int = None, **elements) -> str:
    """Write a one-frame grey DICOM (explicit VR little endian) with raw ``pixels`` bytes.

    Args:
        path (str | Path): the file to write.
        pixels (np.ndarray): (H, W) stored values; their dtype gives Bits Allocated and Pixel
            Representation.
        photometric (str): Photometric Interpretation. Defaults to 'MONOCHROME2'.
        bits_stored (int, optional): Bits Stored. Defaults to Bits Allocated.
        **elements: further data elements by keyword, e.g. ``RescaleSlope=2``.

    Returns:
        str: ``path``.
    """
    ds = _grey_dataset(path, pixels, ExplicitVRLittleEndian, photometric, bits_stored)
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder('<')).tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def write_compressed_grey_dicom(path, pixels: np.ndarray, syntax: str,
                                bits_stored: int = None, **elements) -> str:
    """Write a one-frame MONOCHROME2 DICOM whose pixel data is compressed.

    Args:
        path (str | Path): the file to write.
        pixels (np.ndarray): (H, W) unsigned stored values: uint8 for JPEG baseline (quality
            95, OpenCV's encoder), uint8/uint16 for JPEG 2000 lossless (openjpeg's).
        syntax (str): ``pydicom.uid.JPEGBaseline8Bit`` or ``JPEG2000Lossless``.
        bits_stored (int, optional): Bits Stored. Defaults to Bits Allocated.
        **elements: further data elements by keyword.

    Returns:
        str: ``path``.
    """
    bits = bits_stored or pixels.dtype.itemsize * 8
    if syntax == JPEGBaseline8Bit:
        ok, frame = cv2.imencode('.jpg', pixels, [cv2.IMWRITE_JPEG_QUALITY, 95])
        frame = frame.tobytes()
    elif syntax == JPEG2000Lossless:
        frame = j2k_encode(pixels, bits_stored=bits)
    else:
        raise ValueError(f'write_compressed_grey_dicom: no encoder for {syntax}')
    ds = _grey_dataset(path, pixels, syntax, 'MONOCHROME2', bits)
    ds.PixelData = encapsulate([frame])
    ds['PixelData'].is_undefined_length = True
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def _grey_dataset(path, pixels: np.ndarray, syntax: str, photometric: str,
                  bits_stored: int = None) -> FileDataset:
    """The data set of a one-frame grey image of ``pixels`` (H, W), without pixel data."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b'\0' * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == 'i')
    return ds
