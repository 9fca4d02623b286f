"""CANDID-PTX: multi-line quoted report fields, SIIM-style RLE, files found by UID stem."""
import numpy as np

from data_converters.candid_ptx import CANDIDPTXConverter
from fixtures import assert_skipped, component_boxes, converted, decoded, write_candid


def test_candid_ptx(tmp_path):
    root = str(tmp_path / 'CANDID-PTX')
    truth = write_candid(root)
    report = CANDIDPTXConverter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if v['mask'] is not None}
    assert set(entries) == set(good)
    for uid, item in good.items():
        entry = entries[uid]
        np.testing.assert_array_equal(decoded(entry, 'Pneumothorax'), item['mask'])
        assert [i['bbox'] for i in entry['instances']] == component_boxes(item['mask'])
        assert entry['cls_label'] == [int(item['mask'].any())]
        assert entry['img_path'].endswith(f'scans/{uid}.dcm')
    assert len(entries['1.2.826.0.1.1']['instances']) == 2  # rows 1 and 3 merged
    assert entries['1.2.826.0.1.3']['instances'][0]['bbox'] == [0., 0., 28., 1.]
    assert_skipped(root, {'1.2.826.0.1.4': 'not found'})
    assert sum(report.converted.values()) == 3
