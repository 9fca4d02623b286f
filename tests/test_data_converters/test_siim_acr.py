"""SIIM-ACR: leading-space CSV, relative column-major RLE over several rows, bad DICOMs."""
import re
import shutil

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from data_converters.siim_acr import SIIMACRConverter
from fixtures import (component_boxes, converted, decoded, rect_mask, report_of, siim_rle,
                      write_siim)


@pytest.fixture(scope='module')
def siim(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('siim'))
    truth = write_siim(root)
    report = SIIMACRConverter(root=root, workers=2).run()
    return root, truth, report, converted(root)


def test_masks_boxes_labels_exact(siim):
    root, truth, _, entries = siim
    good = {k: v for k, v in truth.items() if v['mask'] is not None}
    assert set(entries) == set(good)
    for image_id, item in good.items():
        entry = entries[image_id]
        assert (entry['height'], entry['width']) == (24, 32)
        np.testing.assert_array_equal(decoded(entry, 'Pneumothorax'), item['mask'])
        assert [i['bbox'] for i in entry['instances']] == component_boxes(item['mask'])
        assert all(i['bbox_label'] == 0 for i in entry['instances'])
        assert entry['cls_label'] == [int(item['mask'].any())]
        assert entry['patient_id'] == item['patient']  # from the DICOM header
        assert entry['pixel_spacing'] == [0.2, 0.2]
        assert entry['img_path'].startswith('dicom-images-train/')
    # two rows of one image, far apart in the file, are merged: two components
    assert len(entries['img.two']['instances']) == 2
    assert entries['img.neg']['seg'] == {} and entries['img.neg']['instances'] == []


def test_bad_files_skipped_with_reasons(siim):
    root, truth, report, _ = siim
    saved = {s['item']: s['reason'] for s in report_of(root)['skipped']}
    bad = {k: v['reason'] for k, v in truth.items() if v['mask'] is None}
    assert set(saved) == set(bad)
    for image_id, reason in bad.items():
        assert re.search(reason, saved[image_id]), (image_id, saved[image_id])
    assert 'train-rle.csv line 12' in saved['img.badrow']
    assert 'img.overrun' in saved['img.overrun'] and 'line 6' in saved['img.overrun']
    assert report.converted['train'] + report.converted['val'] + report.converted['test'] == 3


def test_patients_stay_together(siim):
    _, _, _, entries = siim
    assert entries['img.two']['split'] == entries['img.neg']['split']  # both patient pA


def test_odd_real_dicoms(tmp_path):
    """pydicom's own test files as SIIM images: compressed syntaxes decode, broken files are
    skipped with the reason, and a mask is decoded on each file's own grid (64 x 64)."""
    files = {'jp2k': 'MR_small_jp2klossless.dcm', 'rle': 'MR_small_RLE.dcm',
             'jpegls': 'MR_small_jpeg_ls_lossless.dcm', 'rtplan': 'rtplan.dcm',
             'truncated': 'MR_truncated.dcm'}
    root = tmp_path / 'siim'
    for image_id, name in files.items():
        dst = root / 'dicom-images-train' / '1' / '2' / f'{image_id}.dcm'
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(get_testdata_file(name, download=False), dst)
    mask = rect_mask(64, 64, (10, 20, 30, 25))
    (root / 'train-rle.csv').write_text(
        'ImageId, EncodedPixels\n' + ''.join(f'{i}, {siim_rle(mask)}\n' for i in files))
    SIIMACRConverter(root=str(root)).run()
    entries = converted(str(root))
    assert set(entries) == {'jp2k', 'rle', 'jpegls'}
    for entry in entries.values():
        np.testing.assert_array_equal(decoded(entry, 'Pneumothorax'), mask)
    saved = {s['item']: s['reason'] for s in report_of(str(root))['skipped']}
    assert set(saved) == {'rtplan', 'truncated'}
    assert 'RT Plan Storage' in saved['rtplan'] and 'rtplan.dcm' in saved['rtplan']
