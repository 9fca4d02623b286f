"""A minimal one-frame grey DICOM writer for tests."""
import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid


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
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
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
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder('<')).tobytes()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return str(path)
