"""MIMIC-CXR-JPG: gzipped tables joined on the study, PA/AP only, official splits."""
import gzip
import os.path as osp

from data_converters.chexpert import CHEXPERT_CLASSES
from data_converters.mimic_cxr import MIMICCXRConverter
from fixtures import assert_skipped, converted, report_of, write_mimic


def test_mimic_cxr(tmp_path):
    root = str(tmp_path / 'mimic-cxr-jpg')
    fixture = write_mimic(root)
    MIMICCXRConverter(root=root).run()
    entries = converted(root)
    assert set(entries) == {'d1', 'd3', 'd4', 'd5'}
    splits = {'train': 'train', 'validate': 'val', 'test': 'test'}
    for dicom_id, entry in entries.items():
        subject, study, _, split = fixture['images'][dicom_id]
        labels = fixture['studies'].get((subject, study))
        expected = [None] * 14 if labels is None else [labels.get(c) for c in CHEXPERT_CLASSES]
        assert entry['cls_label'] == expected
        assert entry['split'] == splits[split]
        assert entry['patient_id'] == subject
    assert entries['d1']['cls_label'][CHEXPERT_CLASSES.index('Pneumonia')] == -1
    assert report_of(root)['counts'] == {
        'images of studies without labeller row (null labels)': 1,
        'views other than PA/AP left out': 1}
    assert_skipped(root, {'d6': 'not found'})


def test_images_of_a_malformed_labeller_row_are_skipped_not_unlabelled(tmp_path):
    """A labeller row with a field missing drops its study's images (it must not give them
    null labels, which the configs' missing_as_zero would turn into all-negative ones)."""
    root = str(tmp_path / 'mimic-cxr-jpg')
    write_mimic(root)
    table = osp.join(root, 'mimic-cxr-2.0.0-chexpert.csv.gz')
    with gzip.open(table, 'rt') as f:
        lines = f.read().splitlines()
    assert lines[3].startswith('11000011,51234567,')  # the labels of d4
    lines[3] = lines[3].rsplit(',', 1)[0]
    with gzip.open(table, 'wt') as f:
        f.write('\n'.join(lines) + '\n')
    MIMICCXRConverter(root=root).run()
    assert set(converted(root)) == {'d1', 'd3', 'd5'}
    malformed = r'mimic-cxr-2.0.0-chexpert.csv.gz line 4: malformed row with 15 fields'
    assert_skipped(root, {'d6': 'not found', '51234567': malformed,
                          'd4': 'the labeller row of study 51234567 is malformed: ' + malformed})
