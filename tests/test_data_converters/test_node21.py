"""NODE21: one metadata row per nodule, label-0 rows without box, .mha via SimpleITK."""
from data_converters.node21 import NODE21Converter
from fixtures import assert_skipped, converted, write_node21


def test_node21(tmp_path):
    root = str(tmp_path / 'node21')
    truth = write_node21(root)
    NODE21Converter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for stem, item in good.items():
        entry = entries[stem]
        assert (entry['height'], entry['width']) == (32, 36)
        assert entry['cls_label'] == item['cls']
        assert [i['bbox'] for i in entry['instances']] == [list(map(float, b))
                                                           for b in item['boxes']]
        assert entry['pixel_spacing'] == [0.25, 0.3]  # (row, col) from the .mha
    assert_skipped(root, {k + '.mha': v['reason'] for k, v in truth.items() if 'reason' in v})
