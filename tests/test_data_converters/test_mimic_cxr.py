"""MIMIC-CXR-JPG: gzipped tables joined on the study, PA/AP only, official splits."""
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
