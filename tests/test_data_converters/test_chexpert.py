"""CheXpert: Path under the release folder, frontal only, raw 1 / 0 / -1 / null labels."""
from data_converters.chexpert import CHEXPERT_CLASSES, CheXpertConverter
from fixtures import assert_skipped, converted, report_of, write_chexpert


def test_chexpert(tmp_path):
    root = str(tmp_path / 'CheXpert-v1.0-small')
    truth = write_chexpert(root)
    CheXpertConverter(root=root).run()
    entries = converted(root, by_path=True)
    frontal = {k: v for k, v in truth.items() if v['view'] == 'Frontal' and 'reason' not in v}
    assert set(entries) == {k.split('/', 1)[1] for k in frontal}
    for key, item in frontal.items():
        entry = entries[key.split('/', 1)[1]]
        assert entry['cls_label'] == [item['labels'].get(c) for c in CHEXPERT_CLASSES]
        assert entry['patient_id'] == key.split('/')[2]
    valid = entries['valid/patient64541/study1/view1_frontal.jpg']
    assert valid['split'] == 'test' and valid['cls_label'] == [0] * 14
    assert entries['train/patient00001/study1/view1_frontal.jpg']['cls_label'][5] == -1  # Edema
    assert {entries[k]['split'] for k in entries if k.startswith('train/')} <= {'train', 'val'}
    assert report_of(root)['counts'] == {'lateral views left out': 1}
    assert_skipped(root, {k: v['reason'] for k, v in truth.items() if 'reason' in v})

