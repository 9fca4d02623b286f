"""Tiny datasets in the official layouts, for the converter tests.

Every writer puts a few small images (16-64 px) and the official tables - same file, folder
and column names, encodings, byte orders, DICOM tags - under a root folder, and returns what
it drew, so that tests can compare the converted labels, boxes and masks pixel-exactly.
Broken files (missing, truncated, pixel-less, unsupported transfer syntax) are made on
purpose where a dataset ships DICOMs.
"""
import csv
import gzip
import io
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import pydicom
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (ComputedRadiographyImageStorage, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, generate_uid)
from scipy import ndimage

MPEG2_MAIN = '1.2.840.10008.1.2.4.100'  # a transfer syntax no pixel-data plugin decodes


# ----------------------------------------------------------------------------- files
def ramp(height: int, width: int, seed: int = 0, high: int = 4095) -> np.ndarray:
    """A uint16 test image with distinct values (so flips and transposes show)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, high + 1, size=(height, width)).astype(np.uint16)


def write_dicom(path: str, pixels: np.ndarray, patient_id: Optional[str] = None,
                transfer_syntax: str = ExplicitVRLittleEndian,
                photometric: str = 'MONOCHROME2', **elements) -> str:
    """Write a one-frame grey CR DICOM (uint16 pixels, 12 bits stored) with a preamble."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b'\0' * 128
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = 'CR'
    ds.PatientID = patient_id or ''
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.2, 0.2]
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if transfer_syntax == MPEG2_MAIN:
        ds.PixelData = encapsulate([b'\x00\x00\x01\xb3' + b'\x00' * 60])
    else:
        ds.PixelData = pixels.astype('<u2').tobytes()
    ds.save_as(path, enforce_file_format=True,
               implicit_vr=transfer_syntax == ImplicitVRLittleEndian)
    return path


def write_truncated_dicom(path: str, pixels: np.ndarray) -> str:
    """A DICOM cut short inside its pixel data (a broken download)."""
    write_dicom(path, pixels)
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) - pixels.nbytes // 2])
    return path


def write_pixelless_dicom(path: str, patient_id: str = 'P') -> str:
    """A DICOM with a header only (e.g. a structured report saved under an image name)."""
    write_dicom(path, np.zeros((4, 4), np.uint16), patient_id=patient_id)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    return path


def write_png(path: str, pixels: np.ndarray) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, pixels)
    return path


def write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence], raw_lines=(),
              gz: bool = False) -> str:
    """Write a CSV (quoting as the csv module does) and append ``raw_lines`` verbatim."""
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(header)
    writer.writerows(rows)
    for line in raw_lines:
        buf.write(line + '\n')
    data = buf.getvalue().encode('utf-8')
    with (gzip.open if gz else open)(path, 'wb') as f:
        f.write(data)
    return path


def box_of(mask: np.ndarray) -> List[float]:
    rows, cols = np.nonzero(mask)
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


def component_boxes(mask: np.ndarray) -> List[List[float]]:
    """Edge boxes of the 8-connected components, in raster order of their first pixel."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    return [[float(c.start), float(r.start), float(c.stop), float(r.stop)]
            for r, c in ndimage.find_objects(labels)]


def rect_mask(height: int, width: int, *rects) -> np.ndarray:
    """uint8 mask with the (x1, y1, x2, y2) rectangles set, x2/y2 inclusive."""
    mask = np.zeros((height, width), np.uint8)
    for x1, y1, x2, y2 in rects:
        mask[y1:y2 + 1, x1:x2 + 1] = 1
    return mask


# ----------------------------------------------------------------------------- RLE encoders
def siim_rle(mask: np.ndarray) -> str:
    """Reference SIIM encoder, from the format's definition: pixels numbered column-major;
    each pair is (pixels since the end of the previous run, run length); '-1' if empty."""
    flat = np.asarray(mask).T.reshape(-1)
    text, position, previous_end = [], 0, 0
    while position < flat.size:
        if flat[position]:
            start = position
            while position < flat.size and flat[position]:
                position += 1
            text += [str(start - previous_end), str(position - start)]
            previous_end = position
        else:
            position += 1
    return ' '.join(text) if text else '-1'


def chexmask_rle(mask: np.ndarray) -> str:
    """Reference CheXmask encoder: row-major, 1-indexed absolute (start, length) pairs."""
    flat = np.concatenate([[0], np.asarray(mask).reshape(-1), [0]])
    changes = np.flatnonzero(np.diff(flat))
    starts, ends = changes[0::2], changes[1::2]
    return ' '.join(f'{s + 1} {e - s}' for s, e in zip(starts, ends))


# ----------------------------------------------------------------------------- SIIM-ACR
def write_siim(root: str, name: str = 'siim') -> Dict[str, dict]:
    """SIIM-ACR layout: ``train-rle.csv`` with leading spaces, nested DICOMs.

    Returns:
        dict: image id -> ``mask`` (H, W) or None for the images that must be skipped, with
        ``reason`` (a regex the skip reason must match) and ``patient``.
    """
    h, w = 24, 32  # not square: a transposed decoder fails
    two = rect_mask(h, w, (2, 3, 6, 8), (20, 10, 29, 14))
    edge = rect_mask(h, w, (28, 0, 31, 23))  # touches the last column and both rows ends
    truth = {
        'img.two': dict(mask=two, patient='pA'),
        'img.neg': dict(mask=np.zeros((h, w), np.uint8), patient='pA'),
        'img.edge': dict(mask=edge, patient='pB'),
        'img.overrun': dict(mask=None, patient='pC', reason='overruns the image'),
        'img.missing': dict(mask=None, patient='pD', reason='not found'),
        'img.truncated': dict(mask=None, patient='pE', reason='cannot be decoded'),
        'img.nopixels': dict(mask=None, patient='pF', reason=r'no \(7FE0,0010\) Pixel Data'),
        'img.mpeg2': dict(mask=None, patient='pG', reason='cannot be decoded'),
        'img.badrow': dict(mask=None, patient='pH', reason='malformed row'),
    }
    for i, (image_id, item) in enumerate(truth.items()):
        path = osp.join(root, 'dicom-images-train', f'1.2.{i}', f'1.3.{i}', f'{image_id}.dcm')
        if image_id == 'img.truncated':
            write_truncated_dicom(path, ramp(h, w, i))
        elif image_id == 'img.nopixels':
            write_pixelless_dicom(path, item['patient'])
        elif image_id == 'img.mpeg2':
            write_dicom(path, ramp(h, w, i), item['patient'], transfer_syntax=MPEG2_MAIN)
        elif image_id != 'img.missing':
            write_dicom(path, ramp(h, w, i), item['patient'])
    # components on separate, non-adjacent rows; header and values with a leading space
    lines = [
        f'img.two, {siim_rle(rect_mask(h, w, (2, 3, 6, 8)))}',
        'img.neg, -1',
        f'img.edge, {siim_rle(edge)}',
        f'img.two, {siim_rle(rect_mask(h, w, (20, 10, 29, 14)))}',
        f'img.overrun, {h * w - 3} 5',
        'img.missing, -1',
        'img.truncated, -1',
        'img.nopixels, -1',
        'img.mpeg2, -1',
        'img.badrow, 0 4',
        'img.badrow, 7 3, 99',
    ]
    with open(osp.join(root, 'train-rle.csv'), 'w') as f:
        f.write('ImageId, EncodedPixels\n' + '\n'.join(lines) + '\n')
    return truth


# ----------------------------------------------------------------------------- reading back
def converted(out: str, prefix: str = '', by_path: bool = False) -> Dict[str, dict]:
    """The converted entries of all splits, by image file stem (or ``img_path``), each with
    its ``split``; every file is also loaded with ``CXRDataset`` (which validates it; in test
    mode, as a fixture's split may be too small to train on)."""
    from fxmm.datasets.cxr_dataset import CXRDataset
    entries = {}
    for split in ('train', 'val', 'test'):
        path = osp.join(out, 'annotations', f'{prefix}{split}.json')
        if not osp.exists(path):
            continue
        with open(path) as f:
            data = json.load(f)
        dataset = CXRDataset(ann_file=path, data_root=out, task=data['metainfo']['tasks'][0],
                             test_mode=True)
        assert len(dataset) == len(data['data_list'])
        for entry in data['data_list']:
            stem = entry['img_path'] if by_path else osp.splitext(
                osp.basename(entry['img_path']))[0]
            assert stem not in entries, f'{stem} in two splits'
            entries[stem] = dict(entry, split=split)
    return entries


def report_of(out: str, prefix: str = '') -> dict:
    with open(osp.join(out, 'annotations', f'{prefix}conversion_report.json')) as f:
        return json.load(f)


def assert_skipped(out: str, expected: Dict[str, str], prefix: str = '') -> None:
    """The report lists exactly the ``expected`` items, each reason matching its regex."""
    saved = {s['item']: s['reason'] for s in report_of(out, prefix)['skipped']}
    assert set(saved) == set(expected), f'skipped {saved}, expected {expected}'
    for item, pattern in expected.items():
        assert re.search(pattern, saved[item]), f'{item}: {saved[item]!r} !~ {pattern!r}'


def decoded(entry: dict, name: str) -> np.ndarray:
    """The (H, W) mask of class ``name`` in an entry (zeros when absent)."""
    from fxmm.structures.mask_rle import decode_mask
    if name not in entry['seg']:
        return np.zeros((entry['height'], entry['width']), np.uint8)
    return decode_mask(entry['seg'][name], entry['height'], entry['width'])


# ----------------------------------------------------------------------------- CANDID-PTX
def write_candid(root: str, file_names: bool = True) -> Dict[str, dict]:
    """CANDID-PTX: report table with quoted multi-line text, DICOMs in arbitrary folders,
    named by SOPInstanceUID except one (found by the UID in its header). With
    ``file_names``, the table's SOPInstanceUID column holds file names (``<uid>.dcm``), as
    in the release; else bare UIDs. ``truth[uid]['file']`` is the image's file name."""
    h, w = 20, 28
    truth = {
        '1.2.826.0.1.1': dict(mask=rect_mask(h, w, (1, 1, 4, 5), (15, 12, 20, 16))),
        '1.2.826.0.1.2': dict(mask=np.zeros((h, w), np.uint8)),
        '1.2.826.0.1.3': dict(mask=rect_mask(h, w, (0, 0, 27, 0)),  # the whole first row
                              file='IM-0003.dcm'),
        '1.2.826.0.1.4': dict(mask=None, reason='not found'),
    }
    for i, uid in enumerate(truth):
        if truth[uid]['mask'] is not None:
            name = truth[uid].setdefault('file', f'{uid}.dcm')
            write_dicom(osp.join(root, f'batch{i % 2}', 'scans', name), ramp(h, w, i),
                        patient_id=f'patient{i}', SOPInstanceUID=uid)

    def named(uid):
        return f'{uid}.dcm' if file_names else uid

    rows = [
        [named('1.2.826.0.1.1'), siim_rle(rect_mask(h, w, (1, 1, 4, 5))),
         'Large right pneumothorax,\n"tension" suspected.\nChest drain advised.'],
        [named('1.2.826.0.1.2'), '-1', 'No pneumothorax.'],
        [named('1.2.826.0.1.1'), siim_rle(rect_mask(h, w, (15, 12, 20, 16))),
         'second component'],
        [named('1.2.826.0.1.3'), siim_rle(truth['1.2.826.0.1.3']['mask']), 'apical, thin'],
        [named('1.2.826.0.1.4'), '-1', 'file lost'],
    ]
    write_csv(osp.join(root, 'Pneumothorax_reports.csv'),
              ['SOPInstanceUID', 'EncodedPixels', 'Report'], rows)
    write_csv(osp.join(root, 'chest_tube.csv'), ['SOPInstanceUID'], [['1.2.826.0.1.1']])
    return truth


# ----------------------------------------------------------------------------- ChestX-Det
def write_chestx_det(root: str) -> Dict[str, dict]:
    """ChestX-Det: train/test JSON lists of syms, boxes and polygons, PNGs in train/ test/."""
    h, w = 40, 48
    lshape = [[2, 2], [10, 2], [10, 5], [5, 5], [5, 12], [2, 12]]
    items = {
        'train': [
            dict(file_name='100.png', syms=['Effusion', 'Nodule'],
                 boxes=[[3, 20, 15, 31], [30, 4, 35, 9]],
                 polygons=[[[3, 20], [14, 20], [14, 30], [3, 30]],
                           [[30, 4], [34, 4], [34, 8], [30, 8]]]),
            dict(file_name='101.png', syms=['Mass', 'Mass'],
                 boxes=[[2, 2, 11, 13], [40, 30, 45, 36]],
                 polygons=[lshape, [[40, 30], [44, 30], [44, 35], [40, 35]]]),
            dict(file_name='102.png', syms=[], boxes=[], polygons=[]),
            dict(file_name='103.png', syms=['Covid'], boxes=[[1, 1, 5, 5]],
                 polygons=[[[1, 1], [4, 1], [4, 4]]]),
            dict(file_name='104.png', syms=['Fracture'], boxes=[[1, 1, 5, 5]],
                 polygons=[[[1, 1], [4, 1]]]),
        ],
        'test': [
            dict(file_name='200.png', syms=['Pneumothorax'], boxes=[[20, 0, 48, 10]],
                 polygons=[[[20, 0], [47, 0], [47, 9], [20, 9]]]),
            dict(file_name='201.png', syms=['Atelectasis'], boxes=[[1, 1, 3, 3]],
                 polygons=[[[1, 1], [2, 1], [2, 2]]]),
        ],
    }
    truth = {
        '100': dict(cls={'Effusion', 'Nodule'},
                    masks={'Effusion': rect_mask(h, w, (3, 20, 14, 30)),
                           'Nodule': rect_mask(h, w, (30, 4, 34, 8))},
                    boxes=[([3, 20, 15, 31], 'Effusion'), ([30, 4, 35, 9], 'Nodule')]),
        '101': dict(cls={'Mass'},
                    masks={'Mass': rect_mask(h, w, (2, 2, 10, 5), (2, 2, 5, 12), (40, 30, 44, 35))},
                    boxes=[([2, 2, 11, 13], 'Mass'), ([40, 30, 45, 36], 'Mass')]),
        '102': dict(cls=set(), masks={}, boxes=[]),
        '103': dict(reason="unknown class.*Covid"),
        '104': dict(reason='>= 3'),
        '200': dict(cls={'Pneumothorax'}, masks={'Pneumothorax': rect_mask(h, w, (20, 0, 47, 9))},
                    boxes=[([20, 0, 48, 10], 'Pneumothorax')]),
        '201': dict(reason='not found'),
    }
    for split, split_items in items.items():
        with open(_mkdirs(osp.join(root, f'ChestX_Det_{split}.json')), 'w') as f:
            json.dump(split_items, f)
        for i, item in enumerate(split_items):
            stem = osp.splitext(item['file_name'])[0]
            if 'reason' not in truth[stem] or stem in ('103', '104'):
                write_png(osp.join(root, f'{split}_data', item['file_name']),
                          ramp(h, w, i, 255).astype(np.uint8))
    return truth


# ----------------------------------------------------------------------------- VinDr-CXR
VINDR_LOCAL_COLUMNS = [
    'Aortic enlargement', 'Atelectasis', 'Calcification', 'Cardiomegaly', 'Clavicle fracture',
    'Consolidation', 'Edema', 'Emphysema', 'Enlarged PA', 'ILD', 'Infiltration', 'Lung Opacity',
    'Lung cavity', 'Lung cyst', 'Mediastinal shift', 'Nodule/Mass', 'Pleural effusion',
    'Pleural thickening', 'Pneumothorax', 'Pulmonary fibrosis', 'Rib fracture', 'Other lesion']
VINDR_GLOBAL_COLUMNS = ['COPD', 'Lung tumor', 'Pneumonia', 'Tuberculosis', 'Other diseases',
                        'No finding']


def _vindr_label_row(image_id, rad, positives):
    values = [int(c in positives) for c in VINDR_LOCAL_COLUMNS + VINDR_GLOBAL_COLUMNS]
    return [image_id] + ([rad] if rad else []) + values


def write_vindr_cxr(root: str, size=(40, 48)) -> Dict[str, dict]:
    """VinDr-CXR (PhysioNet): per-reader findings and image labels, DICOMs in train/ test/.
    Image 'a' is MONOCHROME1, as many VinDr files are."""
    h, w = size
    nan = 'nan'
    findings_train = [
        ['a', 'R8', 'Cardiomegaly', 10, 20, 30, 28],
        ['a', 'R9', 'Cardiomegaly', 11, 21, 31, 29],
        ['a', 'R10', 'No finding', nan, nan, nan, nan],
        ['a', 'R8', 'Nodule/Mass', 2, 2, 6, 6],
        ['b', 'R8', 'No finding', '', '', '', ''],
        ['b', 'R9', 'No finding', '', '', '', ''],
        ['d', 'R8', 'Alien', 1, 1, 4, 4],
        ['e', 'R8', 'No finding', '', '', '', ''],
        ['f', 'R9', 'Atelectasis', 'abc', 1, 4, 4],
    ]
    write_csv(osp.join(root, 'annotations', 'annotations_train.csv'),
              ['image_id', 'rad_id', 'class_name', 'x_min', 'y_min', 'x_max', 'y_max'],
              findings_train)
    label_header = ['image_id', 'rad_ID'] + VINDR_LOCAL_COLUMNS + VINDR_GLOBAL_COLUMNS
    write_csv(osp.join(root, 'annotations', 'image_labels_train.csv'), label_header, [
        _vindr_label_row('a', 'R8', {'Cardiomegaly', 'Nodule/Mass', 'Pneumonia'}),
        _vindr_label_row('a', 'R9', {'Cardiomegaly', 'COPD'}),
        _vindr_label_row('a', 'R10', {'No finding'}),
        _vindr_label_row('b', 'R8', {'No finding'}),
        _vindr_label_row('b', 'R9', {'No finding'}),
        _vindr_label_row('e', 'R8', {'No finding'}),
    ])
    write_csv(osp.join(root, 'annotations', 'annotations_test.csv'),
              ['image_id', 'class_name', 'x_min', 'y_min', 'x_max', 'y_max'],
              [['c', 'Pleural effusion', 0, 30, 12.5, 40]])
    write_csv(osp.join(root, 'annotations', 'image_labels_test.csv'),
              ['image_id'] + VINDR_LOCAL_COLUMNS + VINDR_GLOBAL_COLUMNS,
              [_vindr_label_row('c', None, {'Pleural effusion', 'Tuberculosis'})])
    for i, (image_id, part) in enumerate([('a', 'train'), ('b', 'train'), ('c', 'test'),
                                          ('d', 'train'), ('f', 'train')]):
        write_dicom(osp.join(root, part, f'{image_id}.dicom'), ramp(h, w, i),
                    photometric='MONOCHROME1' if image_id == 'a' else 'MONOCHROME2')
    # global order of the converter: Lung tumor, Pneumonia, Tuberculosis, Other diseases, COPD,
    # No finding
    return {
        'a': dict(split='trainval', cls=[0, 1, 0, 0, 1, 1], readers=[
            ([10, 20, 30, 28], 'Cardiomegaly', 'R8'), ([11, 21, 31, 29], 'Cardiomegaly', 'R9'),
            ([2, 2, 6, 6], 'Nodule/Mass', 'R8')]),
        'b': dict(split='trainval', cls=[0, 0, 0, 0, 0, 1], readers=[]),
        'c': dict(split='test', cls=[0, 0, 1, 0, 0, 0],
                  readers=[([0, 30, 12.5, 40], 'Pleural effusion', None)]),
        'd': dict(reason="unknown class_name 'Alien'"),
        'e': dict(reason='not found'),
        'f': dict(reason="x_min: 'abc' is not a finite number"),
    }


def write_vindr_cxr_kaggle(root: str, size=(40, 48)) -> Dict[str, dict]:
    """VinDr-CXR as the Kaggle competition ships it: ``train.csv`` (findings of 3 readers
    per image, with ``class_id``; "No finding" = class 14 with blank boxes), no image label
    tables, no test tables, unlabelled ``test/`` DICOMs. ``truth[id]['cls']`` holds the
    labels the converter can give: "No finding" only (the converter's last global class)."""
    h, w = size
    rows = [
        ['k1', 'No finding', 14, 'R1', '', '', '', ''],
        ['k1', 'No finding', 14, 'R2', '', '', '', ''],
        ['k1', 'No finding', 14, 'R3', '', '', '', ''],
        ['k2', 'Cardiomegaly', 3, 'R4', 10, 20, 30, 28],
        ['k2', 'Cardiomegaly', 3, 'R5', 11, 21, 31, 29],
        ['k2', 'No finding', 14, 'R6', '', '', '', ''],
        ['k3', 'Aortic enlargement', 0, 'R4', 20, 5, 28, 15],
        ['k3', 'Nodule/Mass', 8, 'R5', 2, 2, 6, 6],
        ['k3', 'Aortic enlargement', 0, 'R6', 20, 5, 28, 15],
    ]
    write_csv(osp.join(root, 'train.csv'), ['image_id', 'class_name', 'class_id', 'rad_id',
                                            'x_min', 'y_min', 'x_max', 'y_max'], rows)
    for i, (image_id, part) in enumerate([('k1', 'train'), ('k2', 'train'), ('k3', 'train'),
                                          ('t1', 'test')]):
        write_dicom(osp.join(root, part, f'{image_id}.dicom'), ramp(h, w, i))
    unknown = [None] * 5
    return {
        'k1': dict(cls=unknown + [1], boxes=[]),
        'k2': dict(cls=unknown + [1], boxes=[([10.5, 20.5, 30.5, 28.5], 'Cardiomegaly')]),
        'k3': dict(cls=unknown + [0], boxes=[([20, 5, 28, 15], 'Aortic enlargement'),
                                             ([2, 2, 6, 6], 'Nodule/Mass')]),
    }


# ----------------------------------------------------------------------------- RSNA
def write_rsna(root: str) -> Dict[str, dict]:
    """RSNA Pneumonia: one row per box, class table with a row per box, DICOMs."""
    h, w = 32, 32
    write_csv(osp.join(root, 'stage_2_train_labels.csv'),
              ['patientId', 'x', 'y', 'width', 'height', 'Target'], [
                  ['p-opacity', '2.0', '3.0', '10.0', '12.0', '1'],
                  ['p-normal', '', '', '', '', '0'],
                  ['p-opacity', '20.0', '5.0', '8.0', '20.0', '1'],
                  ['p-other', '', '', '', '', '0'],
                  ['p-conflict', '1.0', '1.0', '5.0', '5.0', '1'],
                  ['p-badrow', 'abc', '1.0', '5.0', '5.0', '1'],
                  ['p-noclass', '', '', '', '', '0'],
              ])
    write_csv(osp.join(root, 'stage_2_detailed_class_info.csv'), ['patientId', 'class'], [
        ['p-opacity', 'Lung Opacity'], ['p-normal', 'Normal'], ['p-opacity', 'Lung Opacity'],
        ['p-other', 'No Lung Opacity / Not Normal'], ['p-conflict', 'Normal'],
        ['p-badrow', 'Lung Opacity'],
    ])
    for i, pid in enumerate(['p-opacity', 'p-normal', 'p-other', 'p-conflict', 'p-badrow',
                             'p-noclass']):
        write_dicom(osp.join(root, 'stage_2_train_images', f'{pid}.dcm'), ramp(h, w, i),
                    patient_id=pid)
    return {
        'p-opacity': dict(cls=[0, 0, 1], boxes=[[2, 3, 12, 15], [20, 5, 28, 25]]),
        'p-normal': dict(cls=[1, 0, 0], boxes=[]),
        'p-other': dict(cls=[0, 1, 0], boxes=[]),
        'p-conflict': dict(reason="class 'Normal' but 1 boxes"),
        'p-badrow': dict(reason="x: 'abc' is not a finite number"),
        'p-noclass': dict(reason='no row in stage_2_detailed_class_info.csv'),
    }


# ----------------------------------------------------------------------------- NIH
NIH_ENTRY_HEADER = ('Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,'
                    'Patient Gender,View Position,OriginalImage[Width,Height],'
                    'OriginalImagePixelSpacing[x,y]')


def write_chestxray14(root: str) -> Dict[str, dict]:
    """ChestX-ray14: the label table with its split header, the box table with 'Bbox [x' ...
    columns and trailing commas, split lists, PNGs in images_00N/images/."""
    h, w = 32, 32
    rows = [
        ('00000001_000.png', 'Effusion|Infiltration', 0, 1),
        ('00000001_001.png', 'No Finding', 1, 1),
        ('00000002_000.png', 'Hernia', 0, 2),
        ('00000003_000.png', 'Nodule|Mass', 0, 3),
        ('00000004_000.png', 'Covid', 0, 4),
        ('00000005_000.png', 'No Finding', 0, 5),
        ('00000006_000.png', 'Atelectasis', 0, 6),
    ]
    lines = [NIH_ENTRY_HEADER] + [
        f'{img},{labels},{fu},{pid},45,M,PA,{w},{h},0.143,0.143' for img, labels, fu, pid in rows]
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, 'Data_Entry_2017_v2020.csv'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(osp.join(root, 'BBox_List_2017.csv'), 'w') as f:
        f.write('Image Index,Finding Label,Bbox [x,y,w,h],,,\n'
                '00000003_000.png,Nodule,2.5,3.25,5.5,6,,,\n'
                '00000003_000.png,Infiltrate,10,12,8,4,,,\n')
    with open(osp.join(root, 'train_val_list.txt'), 'w') as f:
        f.write('00000001_000.png\n00000001_001.png\n00000002_000.png\n00000004_000.png\n'
                '00000005_000.png\n')
    with open(osp.join(root, 'test_list.txt'), 'w') as f:
        f.write('00000003_000.png\n')
    for i, (img, *_) in enumerate(rows):
        if img != '00000005_000.png':
            write_png(osp.join(root, f'images_00{i % 2 + 1}', 'images', img),
                      ramp(h, w, i, 255).astype(np.uint8))
    return {
        '00000001_000': dict(cls={'Effusion', 'Infiltration'}, boxes=[], patient='1'),
        '00000001_001': dict(cls=set(), boxes=[], patient='1'),
        '00000002_000': dict(cls={'Hernia'}, boxes=[], patient='2'),
        '00000003_000': dict(cls={'Nodule', 'Mass'}, patient='3', split='test',
                             boxes=[([2.5, 3.25, 8.0, 9.25], 'Nodule'),
                                    ([10, 12, 18, 16], 'Infiltration')]),
        '00000004_000': dict(reason=r"unknown finding label\(s\) \['Covid'\]"),
        '00000005_000': dict(reason='not found'),
        '00000006_000': dict(reason='neither train_val_list.txt nor test_list.txt'),
    }


# ----------------------------------------------------------------------------- CheXpert / MIMIC
CHEXPERT_COLUMNS = [
    'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion',
    'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion',
    'Pleural Other', 'Fracture', 'Support Devices']


def _chexpert_values(labels: Dict[str, Optional[int]]) -> List[str]:
    """Labeller values as the CSVs write them: '1.0', '0.0', '-1.0', blank."""
    return ['' if labels.get(c) is None else f'{float(labels[c]):.1f}' for c in CHEXPERT_COLUMNS]


def write_chexpert(root: str) -> Dict[str, dict]:
    """CheXpert-v1.0-small: ``Path`` starts with the release folder; JPEG images."""
    release = osp.basename(root.rstrip('/'))
    header = ['Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA'] + CHEXPERT_COLUMNS
    cases = {
        'train/patient00001/study1/view1_frontal.jpg':
            dict(view='Frontal', labels={'Cardiomegaly': 1, 'Edema': -1, 'No Finding': 0}),
        'train/patient00001/study1/view2_lateral.jpg': dict(view='Lateral', labels={}),
        'train/patient00001/study2/view1_frontal.jpg':
            dict(view='Frontal', labels={'No Finding': 1}),
        'train/patient00002/study1/view1_frontal.jpg':
            dict(view='Frontal', labels={'Pleural Effusion': -1, 'Support Devices': 1}),
        'train/patient00003/study1/view1_frontal.jpg':
            dict(view='Frontal', labels={'Fracture': 2}, reason='must be 1.0, 0.0, -1.0'),
        'train/patient00004/study1/view1_frontal.jpg':
            dict(view='Frontal', labels={}, reason='not found'),
        'valid/patient64541/study1/view1_frontal.jpg':
            dict(view='Frontal', labels={c: 0 for c in CHEXPERT_COLUMNS}),
    }
    tables = {'train': [], 'valid': []}
    for i, (path, case) in enumerate(cases.items()):
        tables[path.split('/')[0]].append(
            [f'{release}/{path}', 'Female', 60, case['view'], 'AP' if case['view'] == 'Frontal'
             else ''] + _chexpert_values(case['labels']))
        if case.get('reason') != 'not found':
            assert cv2.imwrite(_mkdirs(osp.join(root, path)), ramp(24, 20, i, 255).astype(np.uint8))
    for name, rows in tables.items():
        write_csv(osp.join(root, f'{name}.csv'), header, rows)
    return {f'{release}/{p}': c for p, c in cases.items()}


def _mkdirs(path: str) -> str:
    os.makedirs(osp.dirname(path), exist_ok=True)
    return path


def write_mimic(root: str) -> Dict[str, dict]:
    """MIMIC-CXR-JPG: the three gzipped tables (labeller columns in alphabetical order),
    JPEGs under files/pXX/pSUBJECT/sSTUDY/."""
    studies = {  # (subject, study) -> labels
        ('10000032', '50414267'): {'Atelectasis': 1, 'Pneumonia': -1, 'Edema': 0},
        ('10000032', '53189527'): {'No Finding': 1},
        ('11000011', '51234567'): {'Pleural Effusion': 1},
    }
    images = {  # dicom_id -> (subject, study, view, split)
        'd1': ('10000032', '50414267', 'PA', 'train'),
        'd2': ('10000032', '50414267', 'LATERAL', 'train'),
        'd3': ('10000032', '53189527', 'AP', 'train'),
        'd4': ('11000011', '51234567', 'PA', 'test'),
        'd5': ('12000000', '59999999', 'PA', 'validate'),  # study without labeller row
        'd6': ('12000000', '59999999', 'AP', 'validate'),  # file missing
    }
    alphabetical = sorted(CHEXPERT_COLUMNS)
    write_csv(osp.join(root, 'mimic-cxr-2.0.0-chexpert.csv.gz'),
              ['subject_id', 'study_id'] + alphabetical,
              [[s, t] + ['' if labels.get(c) is None else f'{float(labels[c]):.1f}'
                         for c in alphabetical] for (s, t), labels in studies.items()], gz=True)
    write_csv(osp.join(root, 'mimic-cxr-2.0.0-metadata.csv.gz'),
              ['dicom_id', 'subject_id', 'study_id', 'PerformedProcedureStepDescription',
               'ViewPosition', 'Rows', 'Columns'],
              [[d, s, t, 'CHEST (PA AND LAT)', v, 24, 20]
               for d, (s, t, v, _) in images.items()], gz=True)
    write_csv(osp.join(root, 'mimic-cxr-2.0.0-split.csv.gz'),
              ['dicom_id', 'study_id', 'subject_id', 'split'],
              [[d, t, s, split] for d, (s, t, _, split) in images.items()], gz=True)
    for i, (d, (s, t, _, _)) in enumerate(images.items()):
        if d != 'd6':
            path = osp.join(root, 'files', f'p{s[:2]}', f'p{s}', f's{t}', f'{d}.jpg')
            assert cv2.imwrite(_mkdirs(path), ramp(24, 20, i, 255).astype(np.uint8))
    return dict(studies=studies, images=images)


# ----------------------------------------------------------------------------- TBX11K
def write_tbx11k(root: str) -> Dict[str, dict]:
    """TBX11K: imgs/<class>/*.png and COCO JSONs with the three TB categories."""
    categories = [dict(id=1, name='ActiveTuberculosis', supercategory='Tuberculosis'),
                  dict(id=2, name='ObsoletePulmonaryTuberculosis', supercategory='Tuberculosis'),
                  dict(id=3, name='PulmonaryTuberculosis', supercategory='Tuberculosis')]
    train = dict(
        images=[dict(id=0, file_name='tb/tb0003.png', height=32, width=32),
                dict(id=1, file_name='health/h0001.png', height=32, width=32),
                dict(id=2, file_name='sick/s0001.png', height=32, width=32),
                dict(id=3, file_name='tb/tb0004.png', height=32, width=32),
                dict(id=4, file_name='health/h0002.png', height=32, width=32)],
        annotations=[dict(id=0, image_id=0, category_id=1, bbox=[2.0, 3.0, 10.0, 6.5], area=65),
                     dict(id=1, image_id=0, category_id=2, bbox=[18, 20, 6, 8], area=48),
                     dict(id=2, image_id=3, category_id=9, bbox=[1, 1, 2, 2], area=4)],
        categories=categories)
    val = dict(images=[dict(id=0, file_name='tb/tb0100.png', height=32, width=32)],
               annotations=[dict(id=0, image_id=0, category_id=3, bbox=[0, 0, 32, 10],
                                 area=320)],
               categories=categories)
    os.makedirs(osp.join(root, 'annotations', 'json'))
    for name, coco in (('TBX11K_train', train), ('TBX11K_val', val)):
        with open(osp.join(root, 'annotations', 'json', f'{name}.json'), 'w') as f:
            json.dump(coco, f)
    for i, name in enumerate(['tb/tb0003.png', 'health/h0001.png', 'sick/s0001.png',
                              'tb/tb0004.png', 'tb/tb0100.png']):
        write_png(osp.join(root, 'imgs', name), ramp(32, 32, i, 255).astype(np.uint8))
    return {
        'tb0003': dict(cls=[0, 0, 1], split='trainval',
                       boxes=[([2, 3, 12, 9.5], 0), ([18, 20, 24, 28], 1)]),
        'h0001': dict(cls=[1, 0, 0], split='trainval', boxes=[]),
        's0001': dict(cls=[0, 1, 0], split='trainval', boxes=[]),
        'tb0004': dict(reason='unknown category 9'),
        'h0002': dict(reason='not found'),
        'tb0100': dict(cls=[0, 0, 1], split='test', boxes=[([0, 0, 32, 10], 2)]),
    }


# ----------------------------------------------------------------------------- NODE21
def write_node21(root: str) -> Dict[str, dict]:
    """NODE21: metadata.csv (with pandas' unnamed index column) and .mha images."""
    data = osp.join(root, 'cxr_images', 'proccessed_data')
    write_csv(osp.join(data, 'metadata.csv'), ['', 'img_name', 'x', 'y', 'width', 'height',
                                               'label'], [
        [0, 'n0001.mha', 3, 4, 6, 5, 1],
        [1, 'n0001.mha', 20, 22, 8, 8, 1],
        [2, 'c0001.mha', 0, 0, 0, 0, 0],
        [3, 'n0002.mha', 1, 1, 4, 4, 2],
        [4, 'c0002.mha', 0, 0, 0, 0, 0],
    ])
    for i, name in enumerate(['n0001.mha', 'c0001.mha', 'n0002.mha']):
        image = sitk.GetImageFromArray(ramp(32, 36, i).astype(np.int16))
        image.SetSpacing((0.3, 0.25))  # (x, y) = (column, row)
        os.makedirs(osp.join(data, 'images'), exist_ok=True)
        sitk.WriteImage(image, osp.join(data, 'images', name))
    return {
        'n0001': dict(cls=[1], boxes=[[3, 4, 9, 9], [20, 22, 28, 30]]),
        'c0001': dict(cls=[0], boxes=[]),
        'n0002': dict(reason='label must be 0 or 1'),
        'c0002': dict(reason='not found'),
    }


# ----------------------------------------------------------------------------- NLM sets
def write_shenzhen(root: str) -> Dict[str, dict]:
    """Shenzhen: ChinaSet_AllFiles/CXR_png/CHNCXR_<n>_<label>.png."""
    names = {'CHNCXR_0001_0.png': 0, 'CHNCXR_0002_1.png': 1, 'CHNCXR_0003_1.png': 1,
             'CHNCXR_0004.png': None}
    for i, name in enumerate(names):
        write_png(osp.join(root, 'CXR_png', name), ramp(20, 24, i, 255).astype(np.uint8))
    with open(osp.join(root, 'CXR_png', 'Thumbs.db'), 'wb') as f:
        f.write(b'\0' * 8)
    os.makedirs(osp.join(root, 'ClinicalReadings'))
    with open(osp.join(root, 'ClinicalReadings', 'CHNCXR_0001_0.txt'), 'w') as f:
        f.write('male 45yrs\nnormal\n')
    return names


def write_montgomery(root: str) -> Dict[str, dict]:
    """Montgomery: CXR_png/ and ManualMask/{left,right}Mask/ with 0/255 PNG masks."""
    h, w = 30, 24
    truth = {
        'MCUCXR_0001_0': dict(label=0, left_lung=rect_mask(h, w, (14, 4, 21, 25)),
                              right_lung=rect_mask(h, w, (2, 5, 9, 26))),
        'MCUCXR_0002_1': dict(label=1, left_lung=rect_mask(h, w, (13, 3, 22, 24)),
                              right_lung=rect_mask(h, w, (1, 3, 10, 27))),
        'MCUCXR_0003_0': dict(reason='not found'),
    }
    for i, (stem, item) in enumerate(truth.items()):
        write_png(osp.join(root, 'CXR_png', f'{stem}.png'),
                  ramp(h, w, i, 65535).astype(np.uint16))
        if 'reason' not in item:
            for folder, name in (('leftMask', 'left_lung'), ('rightMask', 'right_lung')):
                write_png(osp.join(root, 'ManualMask', folder, f'{stem}.png'),
                          item[name] * 255)
    return truth


# ----------------------------------------------------------------------------- JSRT + SCR
SCR_FOLDERS = {'heart': 'heart', 'left_lung': 'left lung', 'right_lung': 'right lung',
               'left_clavicle': 'left clavicle', 'right_clavicle': 'right clavicle'}


def write_jsrt(root: str, side: int = 32) -> Dict[str, dict]:
    """JSRT raw .IMG (big-endian uint16, 12 bits, side x side) in 2x2-constant blocks, and
    SCR GIF masks at half resolution in fold1/fold2 folders named after each structure."""
    half = side // 2

    def masks(offset):
        return dict(heart=rect_mask(half, half, (5 + offset, 8, 10, 12)),
                    left_lung=rect_mask(half, half, (9, 2, 14, 12)),
                    right_lung=rect_mask(half, half, (1, 2, 6, 12 - offset)),
                    left_clavicle=rect_mask(half, half, (9, 1, 14, 1)),
                    right_clavicle=rect_mask(half, half, (1, 1, 6, 1)))

    truth = {'JPCLN001': dict(fold='fold1', masks=masks(0)),
             'JPCNN002': dict(fold='fold2', masks=masks(1)),
             'JPCLN003': dict(fold='fold1', masks=masks(0), missing='left clavicle',
                              reason=r"no SCR mask for \['left clavicle'\]"),
             'JPCLN004': dict(fold='fold2', masks=masks(0), wrong_size=True,
                              reason='has shape')}
    for i, (stem, item) in enumerate(truth.items()):
        blocks = ramp(half, half, i)  # 12-bit values
        raw = np.kron(blocks, np.ones((2, 2), np.uint16))
        with open(_mkdirs(osp.join(root, 'All247images', f'{stem}.IMG')), 'wb') as f:
            f.write(raw.astype('>u2').tobytes())
        item['expected_png'] = (4095 - blocks).astype(np.uint16)  # inverted, mask grid
        for name, folder in SCR_FOLDERS.items():
            if folder == item.get('missing'):
                continue
            mask = item['masks'][name]
            if item.get('wrong_size') and name == 'right_clavicle':
                mask = np.zeros((half + 2, half), np.uint8)
            path = _mkdirs(osp.join(root, 'scr', item['fold'], 'masks', folder, f'{stem}.gif'))
            Image.fromarray(mask * 255).save(path, format='GIF')
    return truth


# ----------------------------------------------------------------------------- VinDr-RibCXR
def write_vindr_ribcxr(root: str,
                       table_name: str = 'Vindr_RibCXR_{split}_mask.json') -> Dict[str, dict]:
    """VinDr-RibCXR as its README lays it out (``data/<split>/img/*.png``,
    ``data/<split>/<table_name>``): column-oriented JSON (pandas to_json) with
    {"x", "y"} point lists."""
    h, w = 36, 40
    rib_boxes = {  # rib -> (x1, y1, x2, y2) inclusive, drawn as rectangles of float vertices
        'R1': (2, 2, 12, 4), 'R2': (2, 6, 13, 8), 'L1': (25, 2, 36, 4), 'L10': (24, 30, 37, 33)}

    def points(box):
        x1, y1, x2, y2 = box
        return [dict(x=float(x), y=float(y)) for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))]

    ribs = [f'R{i}' for i in range(1, 11)] + [f'L{i}' for i in range(1, 11)]
    splits = {'train': ['VinDr_RibCXR_train_000.png', 'VinDr_RibCXR_train_001.png',
                        'VinDr_RibCXR_train_002.png'],
              'val': ['VinDr_RibCXR_val_000.png']}
    truth = {}
    for split, names in splits.items():
        table = {'img': {}}
        table.update({rib: {} for rib in ribs})
        for row, name in enumerate(names):
            key = str(row)
            table['img'][key] = f'data/{split}/img/{name}'
            for rib in ribs:
                table[rib][key] = points(rib_boxes[rib]) if rib in rib_boxes else 'None'
            if name.endswith('train_001.png'):
                table['R2'][key] = [dict(x=1.0)]  # broken point list
            write_png(osp.join(root, 'data', split, 'img', name),
                      ramp(h, w, row, 255).astype(np.uint8))
            truth[osp.splitext(name)[0]] = dict(
                split='trainval' if split == 'train' else 'test',
                masks={rib: rect_mask(h, w, box) for rib, box in rib_boxes.items()})
        with open(_mkdirs(osp.join(root, 'data', split, table_name.format(split=split))),
                  'w') as f:
            json.dump(table, f)
    truth['VinDr_RibCXR_train_001'] = dict(reason='R2: expected a list of')
    os.remove(osp.join(root, 'data', 'train', 'img', 'VinDr_RibCXR_train_002.png'))
    truth['VinDr_RibCXR_train_002'] = dict(reason='not found')
    return truth


# ----------------------------------------------------------------------------- CheXmask
def write_chexmask(vindr_root: str, csv_path: str) -> Dict[str, dict]:
    """CheXmask table of VinDr-CXR (row-major 1-indexed RLE) for the VinDr fixture images
    (40 x 48): 'a', 'b' good, 'c' low quality, plus a size mismatch and an overrun."""
    h, w = 40, 48
    organs = dict(left_lung=rect_mask(h, w, (26, 5, 40, 33)),
                  right_lung=rect_mask(h, w, (4, 6, 18, 34)),
                  heart=rect_mask(h, w, (15, 20, 32, 36)))
    organs_b = dict(organs, heart=np.zeros((h, w), np.uint8))
    header = ['image_id', 'Dice RCA (Mean)', 'Dice RCA (Max)', 'Landmarks', 'Left Lung',
              'Right Lung', 'Heart', 'Height', 'Width']

    def row(image_id, masks, dice=0.9, height=h, width=w, heart=None):
        return [image_id, dice, dice + 0.02, '1,2,3', chexmask_rle(masks['left_lung']),
                chexmask_rle(masks['right_lung']),
                heart if heart is not None else chexmask_rle(masks['heart']), height, width]

    write_csv(csv_path, header, [
        row('a', organs), row('b', organs_b), row('c', organs, dice=0.5),
        row('d', organs, height=h + 1), row('f', organs, heart=f'{h * w - 2} 5')])
    return {
        'a': dict(split='trainval', masks=organs),
        'b': dict(split='trainval', masks=organs_b),
        'c': dict(reason=r'Dice RCA \(Mean\) 0\.5 is below --min-dice-rca 0\.7'),
        'd': dict(reason='differs from the image'),
        'f': dict(reason='overruns the image'),
    }
