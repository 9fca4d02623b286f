"""Write the built-in synthetic chest X-ray phantom datasets (the demo's and the tests' data).

Four small datasets with different label spaces and task sets, each in the annotation format
of ``docs/design.md``::

    <out>/<name>/images/<split>/<image id>.png|.dcm
    <out>/<name>/annotations/<split>.json

- ``phantom_cls``: cls over five lesions, 8-bit PNG.
- ``phantom_loc``: cls + loc of nodules and masses (0-3 per image), 12-bit DICOM, a fraction
  MONOCHROME1.
- ``phantom_seg``: seg of both lungs and the heart + cls of cardiomegaly, 16-bit PNG.
- ``phantom_ptx``: SIIM-like pneumothorax cls + loc + seg, DICOM, about half positive.

How visible the lesions are is a parameter: ``lesion_size`` and ``lesion_contrast`` multiply
their extent and the attenuation they change (:func:`draw_phantom`; 1 and 1, the defaults,
give the smallest and faintest; ``make demo`` uses larger and denser ones, see the Makefile's
``PHANTOM_ARGS``). The values are written into each annotation file's
``metainfo['source']``.

Everything is a function of ``seed`` and those two: the same values give byte-identical
annotation files and identical pixels. Each dataset is built in a hidden staging folder next
to its final place and moved there with ``os.replace`` once complete, so a folder under
``<out>`` is never half written.

Example::

    python data_converters/synthetic.py --out data/phantoms --num-train 48 --num-val 16 \\
        --num-test 16 --size 128 --seed 0 [--lesion-size 2.5 --lesion-contrast 4] \\
        [--overwrite] [--datasets phantom_cls phantom_seg]
"""
import argparse
import json
import os
import os.path as osp
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np
import pydicom
from mmengine.logging import print_log
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from fxmm.datasets.cxr_dataset import ANNOTATION_VERSION
from fxmm.structures.mask_rle import encode_mask

if __package__:  # imported as data_converters.synthetic
    from .phantom_drawing import (ANATOMY, LESION_TYPES, cardiothoracic_ratio,
                                  check_lesion_style, draw_phantom)
    from .splits import SPLITS
else:  # run as a script: python data_converters/synthetic.py
    from phantom_drawing import (ANATOMY, LESION_TYPES, cardiothoracic_ratio,
                                 check_lesion_style, draw_phantom)
    from splits import SPLITS

__all__ = ['ANATOMY', 'LESION_TYPES', 'PHANTOM_DATASETS', 'PhantomSpec', 'draw_phantom',
           'generate_phantom_datasets', 'main', 'source_text']

# Image file formats: 8-bit PNG, 16-bit PNG, 12-bit-in-16 DICOM (Explicit VR Little Endian).
IMAGE_FORMATS = ('png8', 'png16', 'dicom')
# A heart wider than this fraction of the chest is labelled cardiomegaly.
CARDIOMEGALY_RATIO = 0.5
# Heart ratio ranges drawn for cardiomegaly-negative / -positive images (margin around 0.5).
_HEART_RATIOS = {False: (0.38, 0.46), True: (0.55, 0.64)}
# Field of view of every phantom (mm); pixel spacing = FOV / size.
FIELD_OF_VIEW_MM = 400.0
# Fraction of DICOM files stored MONOCHROME1 (inverted: high stored value = dark).
MONOCHROME1_FRACTION = 0.3
# Digital X-Ray Image Storage - For Presentation.
_DX_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.1.1'
_BITS_STORED = 12


@dataclass(frozen=True)
class PhantomSpec:
    """What one phantom dataset holds.

    Args:
        tasks (tuple[str]): subset of ('cls', 'loc', 'seg').
        cls_classes (tuple[str]): image-level classes: lesion names of
            :data:`LESION_TYPES` or 'cardiomegaly'.
        det_classes (tuple[str]): lesion names boxed for 'loc'.
        seg_classes (tuple[str]): lesion or :data:`ANATOMY` names masked for 'seg'.
        image_format (str): one of :data:`IMAGE_FORMATS`.
        prevalence (dict[str, float]): fraction of positive images per cls class; every
            split gets exactly round(fraction * n) positives (at least one and one negative).
        max_instances (dict[str, int]): most lesions drawn per positive class (default 1).
        lr_pairs (tuple): ``(left_name, right_name)`` class pairs a horizontal flip swaps.
    """
    tasks: Tuple[str, ...]
    cls_classes: Tuple[str, ...]
    image_format: str
    prevalence: Mapping[str, float]
    det_classes: Tuple[str, ...] = ()
    seg_classes: Tuple[str, ...] = ()
    max_instances: Mapping[str, int] = field(default_factory=dict)
    lr_pairs: Tuple[Tuple[str, str], ...] = ()


PHANTOM_DATASETS: Dict[str, PhantomSpec] = {
    'phantom_cls': PhantomSpec(
        tasks=('cls', ), cls_classes=LESION_TYPES, image_format='png8',
        prevalence=dict(nodule=0.3, mass=0.3, consolidation=0.3, effusion=0.3,
                        pneumothorax=0.3)),
    'phantom_loc': PhantomSpec(
        tasks=('cls', 'loc'), cls_classes=('nodule', 'mass'), det_classes=('nodule', 'mass'),
        image_format='dicom', prevalence=dict(nodule=0.45, mass=0.35),
        max_instances=dict(nodule=3, mass=2)),
    'phantom_seg': PhantomSpec(
        tasks=('cls', 'seg'), cls_classes=('cardiomegaly', ),
        seg_classes=('right_lung', 'left_lung', 'heart'), image_format='png16',
        prevalence=dict(cardiomegaly=0.4), lr_pairs=(('left_lung', 'right_lung'), )),
    'phantom_ptx': PhantomSpec(
        tasks=('cls', 'loc', 'seg'), cls_classes=('pneumothorax', ),
        det_classes=('pneumothorax', ), seg_classes=('pneumothorax', ), image_format='dicom',
        prevalence=dict(pneumothorax=0.5)),
}


def _rng(seed: int, name: str, *keys: int) -> np.random.Generator:
    """An independent generator per (seed, dataset, split[, image]) - stable across runs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), *keys])


def _presence(rng: np.random.Generator, spec: PhantomSpec, n: int) -> np.ndarray:
    """Bool (n, C) planned positives per cls class: exact counts, random positions."""
    plan = np.zeros((n, len(spec.cls_classes)), bool)
    for j, name in enumerate(spec.cls_classes):
        k = int(round(spec.prevalence[name] * n))
        k = min(max(k, 1), n - 1) if n >= 2 else k
        plan[rng.permutation(n)[:k], j] = True
    return plan


def _draw(rng: np.random.Generator, spec: PhantomSpec, plan: np.ndarray, size: int,
          style: Mapping[str, float]):
    """Draw one phantom for a row of the presence plan (``style``: the ``lesion_size``
    and ``lesion_contrast`` of :func:`draw_phantom`); labels come from its masks."""
    lesions: List[str] = []
    heart_ratio = None
    for name, positive in zip(spec.cls_classes, plan):
        if name == 'cardiomegaly':
            heart_ratio = rng.uniform(*_HEART_RATIOS[bool(positive)])
        elif positive:
            lesions += [name] * int(rng.integers(1, spec.max_instances.get(name, 1) + 1))
    image, masks, boxes = draw_phantom(rng, size, lesions, heart_ratio=heart_ratio, **style)
    cls_label = [
        int(cardiothoracic_ratio(masks) > CARDIOMEGALY_RATIO) if name == 'cardiomegaly'
        else int(masks[name].any()) for name in spec.cls_classes]
    return image, masks, boxes, cls_label


def _write_png(path: str, image: np.ndarray, bits: int):
    """Write a float (H, W) 0..1 image as an 8- or 16-bit grey PNG."""
    dtype = np.uint8 if bits == 8 else np.uint16
    pixels = np.round(image * np.iinfo(dtype).max).astype(dtype)
    if not cv2.imwrite(path, pixels):
        raise OSError(f'could not write PNG {path}')


def _write_dicom(path: str, image: np.ndarray, patient_id: str, uid_key: str,
                 monochrome1: bool, spacing: float):
    """Write a float (H, W) 0..1 image as a DX DICOM file, 12 bits stored in 16.

    UIDs derive from ``uid_key`` and no date or time is written, so files are reproducible.
    MONOCHROME1 files store ``4095 - value`` (high stored value = dark).
    """
    top = (1 << _BITS_STORED) - 1
    stored = np.round(image * top).astype(np.uint16)
    if monochrome1:
        stored = top - stored
    sop_uid = generate_uid(entropy_srcs=[uid_key, 'sop'])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _DX_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = _DX_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[uid_key, 'study'])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[uid_key, 'series'])
    ds.Modality = 'DX'
    ds.PatientID = patient_id
    ds.PatientName = 'Phantom^' + patient_id
    ds.BodyPartExamined = 'CHEST'
    ds.ViewPosition = 'PA'
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = 'MONOCHROME1' if monochrome1 else 'MONOCHROME2'
    ds.BitsAllocated = 16
    ds.BitsStored = _BITS_STORED
    ds.HighBit = _BITS_STORED - 1
    ds.PixelRepresentation = 0
    ds.RescaleSlope = '1'
    ds.RescaleIntercept = '0'
    ds.RescaleType = 'US'
    ds.PixelSpacing = [f'{spacing:.4f}'] * 2
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def source_text(seed: int, lesion_size: float = 1.0, lesion_contrast: float = 1.0) -> str:
    """The ``metainfo['source']`` of phantoms drawn with these settings."""
    return (f'synthetic chest X-ray phantoms (data_converters/synthetic.py, seed {seed}, '
            f'lesion size {lesion_size:g}, lesion contrast {lesion_contrast:g})')


def _write_split(root: str, name: str, spec: PhantomSpec, split: str, num: int, size: int,
                 seed: int, image_format: str, style: Mapping[str, float],
                 ) -> Tuple[dict, np.ndarray]:
    """Draw and write one split's images (``style``: the lesion multipliers of
    :func:`draw_phantom`); return its annotation dict and (N, C) labels."""
    split_index = SPLITS.index(split)
    plan = _presence(_rng(seed, name, split_index), spec, num)
    os.makedirs(osp.join(root, 'images', split))
    spacing = round(FIELD_OF_VIEW_MM / size, 4)
    data_list, labels = [], []
    for i in range(num):
        rng = _rng(seed, name, split_index, i)
        image, masks, boxes, cls_label = _draw(rng, spec, plan[i], size, style)
        image_id = f'{name}_{split}_{i:04d}'
        patient_id = f'{name}-{split}-{i:04d}'
        rel_path = f'images/{split}/{image_id}.' + ('dcm' if image_format == 'dicom' else 'png')
        if image_format == 'dicom':
            _write_dicom(osp.join(root, rel_path), image, patient_id,
                         f'{seed}/{rel_path}', rng.random() < MONOCHROME1_FRACTION, spacing)
        else:
            _write_png(osp.join(root, rel_path), image, 8 if image_format == 'png8' else 16)
        instances = [{'bbox': box['bbox'], 'bbox_label': spec.det_classes.index(box['label'])}
                     for box in boxes if box['label'] in spec.det_classes]
        data_list.append({
            'img_path': rel_path,
            'height': size,
            'width': size,
            'cls_label': cls_label,
            'instances': instances,
            'seg': {cls: encode_mask(masks[cls]) for cls in spec.seg_classes},
            'patient_id': patient_id,
            'pixel_spacing': [spacing, spacing],
        })
        labels.append(cls_label)
    metainfo = {
        'dataset': name,
        'tasks': list(spec.tasks),
        'cls_classes': list(spec.cls_classes),
        'det_classes': list(spec.det_classes),
        'seg_classes': list(spec.seg_classes),
        'source': source_text(seed, **style),
        'converter_version': ANNOTATION_VERSION,
    }
    if spec.lr_pairs:
        metainfo['lr_pairs'] = [list(pair) for pair in spec.lr_pairs]
    return {'metainfo': metainfo, 'data_list': data_list}, np.array(labels, dtype=int)


def _summary(name: str, spec: PhantomSpec, annotations: Dict[str, dict],
             labels: Dict[str, np.ndarray]) -> str:
    """One line per split: images, positives per cls class, boxes."""
    lines = [f'{name} ({", ".join(spec.tasks)}):']
    for split, ann in annotations.items():
        positives = ', '.join(f'{cls} {int(n)}'
                              for cls, n in zip(spec.cls_classes, labels[split].sum(axis=0)))
        boxes = sum(len(entry['instances']) for entry in ann['data_list'])
        lines.append(f'  {split}: {len(ann["data_list"])} images; positives: {positives}'
                     + (f'; boxes {boxes}' if 'loc' in spec.tasks else ''))
    return '\n'.join(lines)


def _check_args(datasets: Sequence[str], formats: Mapping[str, str], counts: Dict[str, int],
                size: int):
    unknown = sorted(set(datasets) - set(PHANTOM_DATASETS))
    if unknown:
        raise ValueError(f'unknown phantom dataset(s) {unknown}; '
                         f'expected some of {sorted(PHANTOM_DATASETS)}')
    for name, fmt in formats.items():
        if name not in PHANTOM_DATASETS:
            raise ValueError(f'formats names unknown dataset {name!r}; '
                             f'expected one of {sorted(PHANTOM_DATASETS)}')
        if fmt not in IMAGE_FORMATS:
            raise ValueError(f'formats[{name!r}] = {fmt!r}; expected one of {IMAGE_FORMATS}')
    for split, num in counts.items():
        if num < 1:
            raise ValueError(f'num_{split} must be at least 1, got {num}')
    if size < 32:
        raise ValueError(f'size must be at least 32 pixels, got {size}')


def generate_phantom_datasets(out_dir: str,
                              num_train: int = 48,
                              num_val: int = 16,
                              num_test: int = 16,
                              size: int = 128,
                              seed: int = 0,
                              formats: Optional[Mapping[str, str]] = None,
                              overwrite: bool = False,
                              datasets: Optional[Sequence[str]] = None,
                              lesion_size: float = 1.0,
                              lesion_contrast: float = 1.0,
                              ) -> Dict[str, Dict[str, str]]:
    """Write phantom datasets under ``out_dir``, one folder per dataset.

    Args:
        out_dir (str): parent folder; dataset ``name`` goes to ``<out_dir>/<name>``.
        num_train (int): images in the train split. Defaults to 48.
        num_val (int): images in the val split. Defaults to 16.
        num_test (int): images in the test split. Defaults to 16.
        size (int): image height and width in pixels. Defaults to 128.
        seed (int): everything written is a function of it. Defaults to 0.
        formats (dict[str, str], optional): image format per dataset name, overriding its
            :class:`PhantomSpec` (one of :data:`IMAGE_FORMATS`). Defaults to None.
        overwrite (bool): regenerate datasets whose folder exists instead of refusing.
            Defaults to False.
        datasets (Sequence[str], optional): names from :data:`PHANTOM_DATASETS` to write.
            Defaults to all of them.
        lesion_size (float): multiplier of the lesions' extent (:func:`draw_phantom`).
            Defaults to 1.
        lesion_contrast (float): multiplier of the attenuation lesions change. Defaults
            to 1.

    Returns:
        dict[str, dict[str, str]]: dataset name -> split -> annotation file path.

    Raises:
        FileExistsError: a dataset folder exists and ``overwrite`` is False (nothing is
            written then).
    """
    datasets = list(PHANTOM_DATASETS) if datasets is None else list(datasets)
    formats = dict(formats or {})
    counts = dict(train=num_train, val=num_val, test=num_test)
    _check_args(datasets, formats, counts, size)
    check_lesion_style(lesion_size, lesion_contrast)
    style = dict(lesion_size=lesion_size, lesion_contrast=lesion_contrast)
    existing = [osp.join(out_dir, name) for name in datasets
                if osp.exists(osp.join(out_dir, name))]
    if existing and not overwrite:
        raise FileExistsError(f'phantom dataset folder(s) already exist: {existing}; '
                              'pass overwrite=True (--overwrite) to regenerate them')
    os.makedirs(out_dir, exist_ok=True)
    ann_files = {}
    for name in datasets:
        spec = PHANTOM_DATASETS[name]
        final = osp.join(out_dir, name)
        staging = tempfile.mkdtemp(prefix=f'.{name}.', dir=out_dir)
        try:
            os.makedirs(osp.join(staging, 'annotations'))
            annotations, labels = {}, {}
            for split, num in counts.items():
                print_log(f'{name}/{split}: drawing {num} phantoms of {size}x{size} '
                          f'(lesion size {lesion_size:g}, contrast {lesion_contrast:g})',
                          logger='current')
                annotations[split], labels[split] = _write_split(
                    staging, name, spec, split, num, size, seed,
                    formats.get(name, spec.image_format), style)
                with open(osp.join(staging, 'annotations', f'{split}.json'), 'w') as f:
                    json.dump(annotations[split], f, indent=1)
            if osp.exists(final):  # overwrite: swap the old folder out, then drop it
                retired = staging + '.old'
                os.replace(final, retired)
                os.replace(staging, final)
                shutil.rmtree(retired)
            else:
                os.replace(staging, final)
        finally:
            if osp.exists(staging):
                shutil.rmtree(staging)
        ann_files[name] = {split: osp.join(final, 'annotations', f'{split}.json')
                           for split in counts}
        print_log(_summary(name, spec, annotations, labels), logger='current')
    return ann_files


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the synthetic chest X-ray phantom datasets (fxmm demo data).')
    parser.add_argument('--out', required=True, help='parent folder of the datasets')
    parser.add_argument('--num-train', type=int, default=48, help='train images per dataset')
    parser.add_argument('--num-val', type=int, default=16, help='val images per dataset')
    parser.add_argument('--num-test', type=int, default=16, help='test images per dataset')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='everything depends on it')
    parser.add_argument('--lesion-size', type=float, default=1.0,
                        help="multiplier of the lesions' extent (1: the smallest)")
    parser.add_argument('--lesion-contrast', type=float, default=1.0,
                        help='multiplier of the attenuation lesions change (1: the faintest)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate datasets whose folder already exists')
    parser.add_argument('--datasets', nargs='+', choices=sorted(PHANTOM_DATASETS),
                        help='datasets to write (default: all)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, str]]:
    args = parse_args(argv)
    try:
        return generate_phantom_datasets(
            args.out, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test,
            size=args.size, seed=args.seed, overwrite=args.overwrite, datasets=args.datasets,
            lesion_size=args.lesion_size, lesion_contrast=args.lesion_contrast)
    except (FileExistsError, ValueError) as err:  # a user error, not a crash: no traceback
        raise SystemExit(f'synthetic.py: error: {err}') from None


if __name__ == '__main__':
    main()
