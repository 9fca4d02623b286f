"""CANDID-PTX: multi-line quoted report fields, SIIM-style RLE, files matched by exact name,
stem or the DICOM's SOPInstanceUID."""
import os.path as osp

import numpy as np
import pytest

from data_converters.candid_ptx import CANDIDPTXConverter
from fixtures import assert_skipped, component_boxes, converted, decoded, report_of, \
    write_candid


@pytest.mark.parametrize('file_names', [True, False])
def test_candid_ptx(tmp_path, file_names):
    """The release's table names files (``<uid>.dcm``): matched by exact name; bare UIDs by
    file stem; a file named otherwise by the SOPInstanceUID in its header."""
    root = str(tmp_path / 'CANDID-PTX')
    truth = write_candid(root, file_names)
    report = CANDIDPTXConverter(root=root).run()
    by_stem = converted(root)
    good = {k: v for k, v in truth.items() if v['mask'] is not None}
    assert len(by_stem) == len(good)
    entries = {uid: by_stem[osp.splitext(item['file'])[0]] for uid, item in good.items()}
    for uid, item in good.items():
        entry = entries[uid]
        np.testing.assert_array_equal(decoded(entry, 'Pneumothorax'), item['mask'])
        assert [i['bbox'] for i in entry['instances']] == component_boxes(item['mask'])
        assert entry['cls_label'] == [int(item['mask'].any())]
        assert entry['img_path'].endswith(f'scans/{item["file"]}')
    assert len(entries['1.2.826.0.1.1']['instances']) == 2  # rows 1 and 3 merged
    assert entries['1.2.826.0.1.3']['instances'][0]['bbox'] == [0., 0., 28., 1.]
    assert_skipped(root, {'1.2.826.0.1.4': 'not found'})
    assert sum(report.converted.values()) == 3
    rule = 'images matched by exact file name' if file_names else 'images matched by file stem'
    assert report_of(root)['counts'] == {rule: 2, 'images matched by DICOM SOPInstanceUID': 1}
