"""TBX11K: COCO JSON boxes (xywh), image class from the folder, official val = test."""
from data_converters.tbx11k import TBX11KConverter
from fixtures import assert_skipped, converted, write_tbx11k


def test_tbx11k(tmp_path):
    root = str(tmp_path / 'TBX11K')
    truth = write_tbx11k(root)
    TBX11KConverter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for stem, item in good.items():
        entry = entries[stem]
        assert entry['cls_label'] == item['cls']
        assert [(i['bbox'], i['bbox_label']) for i in entry['instances']] == [
            (list(map(float, b)), label) for b, label in item['boxes']]
        assert (entry['split'] == 'test') == (item['split'] == 'test')
        assert entry['img_path'].startswith('imgs/')
    assert_skipped(root, {'tb/tb0004.png': 'unknown category 9',
                          'health/h0002.png': 'not found'})
