"""ChestX-Det: parallel syms/boxes/polygons, polygon unions, official train/test."""
import numpy as np

from data_converters.chestx_det import CHESTX_DET_CLASSES, ChestXDetConverter
from fixtures import assert_skipped, converted, decoded, write_chestx_det


def test_chestx_det(tmp_path):
    root = str(tmp_path / 'ChestX-Det')
    truth = write_chestx_det(root)
    ChestXDetConverter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for stem, item in good.items():
        entry = entries[stem]
        assert entry['cls_label'] == [int(c in item['cls']) for c in CHESTX_DET_CLASSES]
        assert [(i['bbox'], CHESTX_DET_CLASSES[i['bbox_label']]) for i in entry['instances']] \
            == [(list(map(float, b)), c) for b, c in item['boxes']]
        assert set(entry['seg']) == set(item['masks'])
        for name, mask in item['masks'].items():
            np.testing.assert_array_equal(decoded(entry, name), mask)
    assert entries['200']['split'] == 'test'
    assert {entries[s]['split'] for s in ('100', '101', '102')} <= {'train', 'val'}
    assert_skipped(root, {'103.png': r"unknown class\(es\) \['Covid'\]",
                          '104.png': r'ChestX_Det_train.json\[4\] polygons\[0\].*>= 3',
                          '201.png': 'not found'})
