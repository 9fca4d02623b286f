"""TBX11K: COCO JSON boxes (xywh), image class from the folder, official val = test."""
import json
import os.path as osp

import pytest

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


def _edit_json(path, edit):
    with open(path) as f:
        coco = json.load(f)
    edit(coco)
    with open(path, 'w') as f:
        json.dump(coco, f)


def test_tbx11k_image_in_both_files_and_bad_annotation_skipped(tmp_path):
    """An image listed by both official files is left out as ambiguous and an annotation
    without image_id is reported; every other image is still converted."""
    root = str(tmp_path / 'TBX11K')
    truth = write_tbx11k(root)
    ann_dir = osp.join(root, 'annotations', 'json')

    def add_train_image(coco):
        coco['images'].append(dict(id=7, file_name='tb/tb0003.png', height=32, width=32))
        coco['annotations'].append(dict(id=5, category_id=3, bbox=[0, 0, 4, 4]))

    _edit_json(osp.join(ann_dir, 'TBX11K_val.json'), add_train_image)
    TBX11KConverter(root=root).run()
    good = {k for k, v in truth.items() if 'reason' not in v}
    assert set(converted(root)) == good - {'tb0003'}
    assert_skipped(root, {
        'tb/tb0003.png': r'listed 2 times by the official files \(official splits: '
                         r'trainval, test\): left out as ambiguous',
        'TBX11K_val.json:annotations[1]': r'TBX11K_val.json annotations\[1\]: no image_id',
        'tb/tb0004.png': 'unknown category 9', 'health/h0002.png': 'not found'})


def test_tbx11k_unreadable_json_names_the_file(tmp_path):
    root = str(tmp_path / 'TBX11K')
    write_tbx11k(root)
    path = osp.join(root, 'annotations', 'json', 'TBX11K_train.json')
    with open(path, 'w') as f:
        f.write('{"images": [')
    with pytest.raises(ValueError, match=r'TBX11K_train.json: not a valid JSON file'):
        TBX11KConverter(root=root).run()
    with open(path, 'w') as f:
        json.dump(dict(images={}, categories=[]), f)
    with pytest.raises(ValueError, match=r"TBX11K_train.json: \['images'\] must each hold a "
                                         'JSON list'):
        TBX11KConverter(root=root).run()
