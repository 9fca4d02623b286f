"""ChestX-ray14: split label/box headers, 'Infiltrate' vs 'Infiltration', split lists."""
from data_converters.chestxray14 import NIH_BOX_CLASSES, NIH_CLASSES, ChestXray14Converter
from fixtures import assert_skipped, converted, write_chestxray14


def test_chestxray14(tmp_path):
    root = str(tmp_path / 'CXR8')
    truth = write_chestxray14(root)
    ChestXray14Converter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for stem, item in good.items():
        entry = entries[stem]
        assert entry['cls_label'] == [int(c in item['cls']) for c in NIH_CLASSES]
        assert [(i['bbox'], NIH_BOX_CLASSES[i['bbox_label']]) for i in entry['instances']] \
            == [(list(map(float, b)), c) for b, c in item['boxes']]
        assert entry['patient_id'] == item['patient']
        assert (entry['split'] == 'test') == (item.get('split') == 'test')
    # the follow-up of patient 1 stays with the first image
    assert entries['00000001_000']['split'] == entries['00000001_001']['split']
    assert_skipped(root, {k + '.png': v['reason'] for k, v in truth.items() if 'reason' in v})
