"""RSNA Pneumonia: one row per box, 3-class image labels, inconsistent images skipped."""
from data_converters.rsna_pneumonia import RSNAPneumoniaConverter
from fixtures import assert_skipped, converted, write_rsna


def test_rsna_pneumonia(tmp_path):
    root = str(tmp_path / 'rsna-pneumonia-detection-challenge')
    truth = write_rsna(root)
    RSNAPneumoniaConverter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for pid, item in good.items():
        entry = entries[pid]
        assert entry['cls_label'] == item['cls']
        assert [i['bbox'] for i in entry['instances']] == [list(map(float, b))
                                                           for b in item['boxes']]
        assert all(i['bbox_label'] == 0 for i in entry['instances'])
        assert entry['patient_id'] == pid
    assert_skipped(root, {k: v['reason'] for k, v in truth.items() if 'reason' in v})
