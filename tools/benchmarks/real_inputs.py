"""Synthetic chest X-rays at the sizes and in the file formats of the real datasets.

What a data pipeline costs depends on the file's format, size and entropy more than on
what it shows, so the benchmark measures files written like the public releases store
theirs (``docs/datasets.md``): 12-bit DICOM at 3072 x 2560 (uncompressed and JPEG 2000),
8-bit JPEG baseline DICOM at 1024 px, MIMIC-size and CheXpert-small JPEGs, 8- and 16-bit
PNGs from 512 to 3000 px, MetaImage. Each image is a smooth chest-like anatomy (body,
lungs, ribs, soft texture) plus white noise of a few grey levels, so that compression and
decoding do realistic work; every file gets its own noise. Each input is one small dataset
in fxmm's annotation format, all under one data root, with a label, two boxes and two
masks (in original pixels) per image, so the cls, loc and seg pipelines all run on it.
"""
import json
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Tuple

import cv2
import numpy as np
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

from fxmm.datasets.cxr_dataset import ANNOTATION_VERSION
from fxmm.structures.mask_rle import encode_mask
from fxmm.testing.dicom import write_compressed_grey_dicom, write_grey_dicom

JPEG_QUALITY = 95  # JPEG files; JPEG baseline DICOM as write_compressed_grey_dicom
NOISE_LEVELS = {8: 2., 12: 12.}  # standard deviation of the noise, in grey levels
PIXEL_SPACING = 0.14  # mm, written to the DICOM and MetaImage files


@dataclass(frozen=True)
class RealInput:
    """One kind of file of the real datasets.

    Args:
        name (str): the input's name (its dataset and folder name).
        datasets (str): the releases that store their images so.
        kind (str): ``'dicom'`` (uncompressed), ``'dicom_j2k'`` (JPEG 2000 lossless),
            ``'dicom_jpeg'`` (8-bit JPEG baseline), ``'jpeg'``, ``'png'`` or ``'mha'``.
        height (int): rows.
        width (int): columns.
        bits (int): 8, or 12 (stored in 16-bit samples).
    """

    name: str
    datasets: str
    kind: str
    height: int
    width: int
    bits: int

    @property
    def extension(self) -> str:
        return {'jpeg': '.jpg', 'png': '.png', 'mha': '.mha'}.get(self.kind, '.dcm')

    @property
    def label(self) -> str:
        """A short description: size, depth and format."""
        kind = {'dicom': 'uncompressed DICOM', 'dicom_j2k': 'JPEG 2000 lossless DICOM',
                'dicom_jpeg': 'JPEG baseline DICOM', 'jpeg': 'JPEG', 'png': 'PNG',
                'mha': 'MetaImage'}[self.kind]
        return f'{self.width} x {self.height} {self.bits}-bit {kind}'


REAL_INPUTS = (
    RealInput('dicom12_3072', 'VinDr-CXR', 'dicom', 3072, 2560, 12),
    RealInput('dicom12_j2k_3072', 'clinical archives (JPEG 2000 lossless)', 'dicom_j2k', 3072,
              2560, 12),
    RealInput('dicom8_jpeg_1024', 'RSNA Pneumonia, SIIM-ACR', 'dicom_jpeg', 1024, 1024, 8),
    RealInput('jpeg_3056', 'MIMIC-CXR-JPG', 'jpeg', 3056, 2544, 8),
    RealInput('jpeg_390', 'CheXpert-v1.0-small', 'jpeg', 390, 320, 8),
    RealInput('png8_3000', 'Shenzhen (about 3000 px)', 'png', 3000, 2940, 8),
    RealInput('png8_1024', 'ChestX-ray14, ChestX-Det', 'png', 1024, 1024, 8),
    RealInput('png8_512', 'TBX11K', 'png', 512, 512, 8),
    RealInput('png16_2048', 'converters --to-png of 12-bit DICOM', 'png', 2048, 2048, 12),
    RealInput('mha12_1024', 'NODE21', 'mha', 1024, 1024, 12),
)
CLASSES = dict(cls_classes=['finding'], det_classes=['opacity'],
               seg_classes=['left_lung', 'right_lung'])
LR_PAIRS = [['left_lung', 'right_lung']]


def anatomy(height: int, width: int) -> np.ndarray:
    """A smooth chest-like image in 0..1, float32 (height, width): body, two lungs, ribs,
    soft texture; drawn at a quarter of the size and enlarged (it is smooth)."""
    h, w = max(8, height // 4), max(8, width // 4)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / h, x / w
    body = np.exp(-(((x - 0.5) / 0.45) ** 6 + ((y - 0.5) / 0.55) ** 6))
    lungs = sum(np.exp(-(((x - 0.5 - s * 0.2) / 0.13) ** 2 + ((y - 0.45) / 0.28) ** 2))
                for s in (-1, 1))
    ribs = 0.08 * np.sin(y * 60 + 3 * np.sin(x * 6)) * lungs
    texture = cv2.resize(np.random.default_rng(h * w).normal(0, 0.03, (h // 8 + 2, w // 8 + 2))
                         .astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    small = 0.15 + 0.7 * body - 0.35 * lungs + ribs + texture
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def noisy_pixels(base: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """``base`` (0..1) in ``bits``-bit stored integers with :data:`NOISE_LEVELS` of noise."""
    top = (1 << bits) - 1
    img = base * top + rng.standard_normal(base.shape, dtype=np.float32) * NOISE_LEVELS[bits]
    return np.clip(img, 0, top).astype(np.uint8 if bits == 8 else np.uint16)


def write_image(spec: RealInput, path: str, pixels: np.ndarray) -> None:
    """Write ``pixels`` (stored integers, (height, width)) as ``spec`` says."""
    if spec.kind == 'dicom':
        write_grey_dicom(path, pixels, bits_stored=spec.bits,
                         PixelSpacing=[PIXEL_SPACING, PIXEL_SPACING])
    elif spec.kind in ('dicom_j2k', 'dicom_jpeg'):
        write_compressed_grey_dicom(
            path, pixels, JPEG2000Lossless if spec.kind == 'dicom_j2k' else JPEGBaseline8Bit,
            bits_stored=spec.bits, PixelSpacing=[PIXEL_SPACING, PIXEL_SPACING])
    elif spec.kind in ('jpeg', 'png'):
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if spec.kind == 'jpeg' else []
        if not cv2.imwrite(path, pixels, params):
            raise OSError(f'OpenCV could not write {path}')
    else:
        import SimpleITK as sitk  # on first use: only the MetaImage input needs it
        image = sitk.GetImageFromArray(pixels)
        image.SetSpacing((PIXEL_SPACING, PIXEL_SPACING))
        sitk.WriteImage(image, path)


def _entry(spec: RealInput, img_path: str) -> dict:
    """The annotation entry of one image: a label, two boxes, both lungs' masks."""
    h, w = spec.height, spec.width
    boxes = [[0.18 * w, 0.2 * h, 0.44 * w, 0.72 * h], [0.56 * w, 0.2 * h, 0.82 * w, 0.72 * h]]
    seg = {}
    for name, cx in (('right_lung', 0.3), ('left_lung', 0.7)):  # patient's right: image left
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (round(cx * w), round(0.45 * h)), (round(0.12 * w), round(0.26 * h)),
                    0, 0, 360, 1, -1)
        seg[name] = encode_mask(mask)
    return dict(img_path=img_path, height=h, width=w, patient_id=img_path, cls_label=[1],
                instances=[dict(bbox=[round(v, 2) for v in b], bbox_label=0) for b in boxes],
                seg=seg)


def write_real_inputs(folder: str, num_files: int, inputs=REAL_INPUTS,
                      seed: int = 0) -> Dict[str, str]:
    """Write ``num_files`` images of every input and its annotation file under ``folder``.

    Layout: ``<folder>/<input>/<i>.<ext>`` and ``<folder>/annotations/<input>.json`` (image
    paths relative to ``folder``, the data root of them all).

    Returns:
        dict[str, str]: input name -> its annotation file.
    """
    ann_files = {}
    os.makedirs(osp.join(folder, 'annotations'), exist_ok=True)
    for k, spec in enumerate(inputs):
        base = anatomy(spec.height, spec.width)
        rng = np.random.default_rng([seed, k])
        os.makedirs(osp.join(folder, spec.name), exist_ok=True)
        entries = []
        for i in range(num_files):
            img_path = f'{spec.name}/{i:03d}{spec.extension}'
            write_image(spec, osp.join(folder, img_path), noisy_pixels(base, spec.bits, rng))
            entries.append(_entry(spec, img_path))
        ann = dict(metainfo=dict(dataset=spec.name, tasks=['cls', 'loc', 'seg'],
                                 lr_pairs=LR_PAIRS, source='fxmm benchmark (synthetic)',
                                 converter_version=ANNOTATION_VERSION, **CLASSES),
                   data_list=entries)
        path = ann_files[spec.name] = osp.join(folder, 'annotations', f'{spec.name}.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(ann, f)
    return ann_files


def file_kib(folder: str, ann_file: str) -> Tuple[float, int]:
    """Mean size in KiB of the image files of an annotation file, and their number."""
    with open(ann_file, encoding='utf-8') as f:
        paths = [osp.join(folder, e['img_path']) for e in json.load(f)['data_list']]
    return sum(osp.getsize(p) for p in paths) / len(paths) / 1024, len(paths)

