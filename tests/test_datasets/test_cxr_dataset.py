import json
import os.path as osp
import re

import numpy as np
import pytest

from fxmm.datasets.cxr_dataset import ANNOTATION_VERSION, CXRDataset
from fxmm.registry import DATASETS
from fxmm.structures.mask_rle import encode_mask

H, W = 32, 40


def _mask(rows, cols):
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[rows, cols] = 1
    return encode_mask(mask)


def _annotation():
    """Three entries: a positive, a negative and one with an absolute path and a box that
    reaches just outside the image."""
    metainfo = dict(
        dataset='toy', tasks=['cls', 'loc', 'seg'], cls_classes=['Effusion', 'Pneumothorax'],
        det_classes=['Nodule'], seg_classes=['Left Lung', 'Right Lung'],
        lr_pairs=[['Left Lung', 'Right Lung']], source='test',
        converter_version=ANNOTATION_VERSION)
    data_list = [
        dict(img_path='a.png', height=H, width=W, cls_label=[1, -1], patient_id='p0',
             instances=[dict(bbox=[2, 3, 10, 12], bbox_label=0, reader='R1')],
             seg={'Left Lung': _mask(slice(4, 20), slice(22, 36)),
                  'Right Lung': encode_mask(np.zeros((H, W), bool))}),
        dict(img_path='b.png', height=H, width=W, cls_label=[0, None], instances=[], seg={},
             patient_id='p1'),
        dict(img_path='/abs/c.png', height=H, width=W, cls_label=[None, None],
             instances=[dict(bbox=[-1, 0, 40.5, 20], bbox_label=0)],
             seg={'Right Lung': _mask(slice(4, 20), slice(4, 18))}, pixel_spacing=[0.2, 0.2]),
    ]
    return dict(metainfo=metainfo, data_list=data_list)


def _write(tmp_path, ann, name='ann.json'):
    path = tmp_path / name
    path.write_text(json.dumps(ann))
    return str(path)


@pytest.fixture
def ann_file(tmp_path):
    return _write(tmp_path, _annotation())


def test_loads_and_gives_the_design_keys(ann_file, tmp_path):
    ds = CXRDataset(ann_file, data_root=str(tmp_path), data_prefix=dict(img_path='images'),
                    task='loc')
    assert len(ds) == 3
    info = ds[0]  # empty pipeline: the sample as the first transform sees it
    assert info['img_path'] == osp.join(str(tmp_path), 'images', 'a.png')
    assert ds.get_data_info(2)['img_path'] == '/abs/c.png'
    assert info['dataset'] == 'toy' and info['task'] == 'loc' and info['sample_idx'] == 0
    assert info['cls_classes'] == ['Effusion', 'Pneumothorax']
    assert info['det_classes'] == ['Nodule']
    assert info['seg_classes'] == ['Left Lung', 'Right Lung']
    assert info['lr_pairs'] == [['Left Lung', 'Right Lung']]
    assert (info['height'], info['width'], info['patient_id']) == (H, W, 'p0')
    assert info['cls_label'].dtype == np.float32
    np.testing.assert_array_equal(info['cls_label'], [1, -1])
    np.testing.assert_array_equal(ds.get_data_info(1)['cls_label'], [0, np.nan])
    assert info['instances'] == [dict(bbox=[2.0, 3.0, 10.0, 12.0], bbox_label=0, reader='R1')]
    # the all-zero Right Lung mask is dropped: an absent class means an empty mask
    assert list(info['seg']) == ['Left Lung']
    assert ds.metainfo['converter_version'] == ANNOTATION_VERSION


def test_box_within_tolerance_is_clipped(ann_file):
    ds = CXRDataset(ann_file)
    assert ds.get_data_info(2)['instances'][0]['bbox'] == [0.0, 0.0, 40.0, 20.0]
    assert ds.get_data_info(2)['pixel_spacing'] == [0.2, 0.2]


def test_built_from_the_registry(ann_file):
    ds = DATASETS.build(dict(type='CXRDataset', ann_file=ann_file, task='seg'))
    assert isinstance(ds, CXRDataset) and ds.task == 'seg'


def test_class_counts_and_repr(ann_file):
    ds = CXRDataset(ann_file, task='cls')
    assert ds.class_counts() == {'cls': {'Effusion': 1, 'Pneumothorax': 0},
                                 'det': {'Nodule': 2},
                                 'seg': {'Left Lung': 1, 'Right Lung': 1}}
    text = repr(ds)
    assert "dataset='toy', images=3" in text
    assert 'images labelled 1 per class - Effusion: 1, Pneumothorax: 0' in text
    assert 'boxes per class - Nodule: 2' in text
    lazy = CXRDataset(ann_file, lazy_init=True)
    assert 'not loaded yet' in repr(lazy)


def test_get_cat_ids_per_task(ann_file):
    assert CXRDataset(ann_file, task='loc').get_cat_ids(0) == [0]
    assert CXRDataset(ann_file, task='loc').get_cat_ids(1) == []
    assert CXRDataset(ann_file, task='cls').get_cat_ids(0) == [0]
    assert CXRDataset(ann_file, task='seg').get_cat_ids(2) == [1]
    with pytest.raises(ValueError, match='needs a task'):
        CXRDataset(ann_file).get_cat_ids(0)


def test_task_resolution(tmp_path, ann_file):
    assert CXRDataset(ann_file).task is None  # three tasks: the multi-task wrapper decides
    ann = _annotation()
    ann['metainfo'].update(tasks=['cls'], det_classes=[], seg_classes=[], lr_pairs=[])
    for entry in ann['data_list']:
        entry.update(instances=[], seg={})
    single = _write(tmp_path, ann, 'cls_only.json')
    assert CXRDataset(single).task == 'cls'
    with pytest.raises(ValueError, match=f"{single}: task 'seg' requested, but the file has "
                                         r"tasks \['cls'\]"):
        CXRDataset(single, task='seg')
    with pytest.raises(ValueError, match="unknown task 'det'"):
        CXRDataset(single, task='det')


def test_filter_empty_gt(ann_file):
    # by default negatives stay (useful for detection)
    assert len(CXRDataset(ann_file, task='loc')) == 3
    loc = CXRDataset(ann_file, task='loc', filter_cfg=dict(filter_empty_gt=True))
    assert [osp.basename(loc.get_data_info(i)['img_path']) for i in range(len(loc))] == \
        ['a.png', 'c.png']
    seg = CXRDataset(ann_file, task='seg', filter_cfg=dict(filter_empty_gt=True))
    assert len(seg) == 2
    cls = CXRDataset(ann_file, task='cls', filter_cfg=dict(filter_empty_gt=True))
    assert len(cls) == 2  # c.png has only missing labels
    assert len(CXRDataset(ann_file, task='loc', test_mode=True,
                          filter_cfg=dict(filter_empty_gt=True))) == 3
    with pytest.raises(ValueError, match='filter_empty_gt needs a task'):
        CXRDataset(ann_file, filter_cfg=dict(filter_empty_gt=True))
    with pytest.raises(ValueError, match=r"unknown keys \['min_size'\]"):
        CXRDataset(ann_file, filter_cfg=dict(min_size=4))


def test_indices_and_unserialized(ann_file):
    ds = CXRDataset(ann_file, indices=[2], serialize_data=False)
    assert len(ds) == 1 and ds.get_data_info(0)['img_path'] == '/abs/c.png'


def test_label_policies_at_load(ann_file):
    ones = CXRDataset(ann_file, label_policy='ones')
    np.testing.assert_array_equal(ones.get_data_info(0)['cls_label'], [1, 1])
    lsr = CXRDataset(ann_file, label_policy=dict(type='lsr', missing_as_zero=True),
                     label_seed=7)
    value = lsr.get_data_info(0)['cls_label'][1]
    assert 0.55 <= value <= 0.85  # the method's LSR range
    np.testing.assert_array_equal(lsr.get_data_info(1)['cls_label'], [0, 0])
    same = CXRDataset(ann_file, label_policy='lsr', label_seed=7)
    assert same.get_data_info(0)['cls_label'][1] == value
    other = CXRDataset(ann_file, label_policy='lsr', label_seed=8)
    assert other.get_data_info(0)['cls_label'][1] != value
    with pytest.raises(ValueError, match='unknown label policy'):
        CXRDataset(ann_file, label_policy='u-ones')


def _set(path, value):
    """A mutation setting ``entry[path[0]][path[1]]... = value``."""
    def apply(ann, index):
        target = ann['data_list'][index]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return apply


def _delete(key):
    def apply(ann, index):
        del ann['data_list'][index][key]
    return apply


BAD_ENTRIES = [
    (_delete('img_path'), 'img_path', 'must be a non-empty path, got None'),
    (_set(['height'], 0), 'height', 'must be a positive int, got 0'),
    (_set(['width'], '40'), 'width', "must be a positive int, got '40'"),
    (_set(['width'], 40.0), 'width', 'must be a positive int, got 40.0'),
    (_set(['cls_label'], [1]), 'cls_label', 'must be a list of 2 labels'),
    (_delete('cls_label'), 'cls_label', 'must be a list of 2 labels .*got None'),
    (_set(['cls_label'], [1, 2]), 'cls_label', 'values must be 1, 0, -1 or null, got 2'),
    (_set(['cls_label'], [True, 0]), 'cls_label', 'got True'),
    (_set(['instances'], {}), 'instances', 'must be a list'),
    (_set(['instances', 0, 'bbox'], [1, 2, 3]), 'instances[0].bbox', 'must be 4 finite'),
    (_set(['instances', 0, 'bbox'], [1, 2, float('nan'), 4]), 'instances[0].bbox',
     'must be 4 finite'),
    (_set(['instances', 0, 'bbox'], [10, 2, 5, 8]), 'instances[0].bbox', 'x1 < x2'),
    (_set(['instances', 0, 'bbox'], [1, 2, 5, 40]), 'instances[0].bbox',
     'outside the image .* by more than 2.0 px'),
    (_set(['instances', 0, 'bbox'], [40.5, 2, 41, 8]), 'instances[0].bbox',
     'no area inside the image'),
    (_set(['instances', 0, 'bbox_label'], 1), 'instances[0].bbox_label',
     r'must be an int in \[0, 1\)'),
    (_set(['instances', 0, 'reader'], 3), 'instances[0].reader', 'must be a str or null'),
    (_set(['seg', 'Heart'], encode_mask(np.ones((H, W), bool))), 'seg.Heart',
     'not one of seg_classes'),
    (_set(['seg', 'Left Lung'], encode_mask(np.ones((H, W + 1), bool))), 'seg.Left Lung',
     r'RLE size \[32, 41\] does not match the image size \[32, 40\]'),
    (_set(['seg', 'Left Lung', 'counts'], '9'), 'seg.Left Lung', 'cover 9 pixels'),
    (_set(['seg'], []), 'seg', 'must be a dict'),
    (_set(['patient_id'], 17), 'patient_id', 'must be a str'),
    (_set(['pixel_spacing'], [0.2, -1]), 'pixel_spacing', 'must be \\[row_mm, col_mm\\]'),
]


@pytest.mark.parametrize('mutate, field, what', BAD_ENTRIES,
                         ids=[f'{field}-{i}' for i, (_, field, _) in enumerate(BAD_ENTRIES)])
def test_malformed_entry_names_file_index_field(tmp_path, mutate, field, what):
    ann = _annotation()
    mutate(ann, 0)
    ann['data_list'] = [ann['data_list'][1], ann['data_list'][2], ann['data_list'][0]]
    path = _write(tmp_path, ann)
    with pytest.raises(ValueError) as err:
        CXRDataset(path)
    prefix = f'{path} data_list[2].{field}: '
    assert str(err.value).startswith(prefix), str(err.value)
    assert re.search(what, str(err.value)), str(err.value)


def test_entry_that_is_not_a_dict(tmp_path):
    ann = _annotation()
    ann['data_list'].append(['a.png'])
    path = _write(tmp_path, ann)
    with pytest.raises(ValueError, match=rf'{path} data_list\[3\]: must be a dict, got list'):
        CXRDataset(path)


def _meta(**changes):
    def apply(ann):
        ann['metainfo'].update(changes)
    return apply


BAD_METAINFO = [
    (_meta(converter_version=ANNOTATION_VERSION + 1), 'converter_version',
     'annotation file from a newer fxmm'),
    (_meta(converter_version=None), 'converter_version', 'must be a positive int'),
    (_meta(dataset=''), 'dataset', 'non-empty name'),
    (_meta(dataset='a.b'), 'dataset', 'without "."'),
    (_meta(tasks=['cls', 'det']), 'tasks', 'distinct tasks from'),
    (_meta(tasks=[]), 'tasks', 'non-empty list'),
    (_meta(tasks=[['cls']]), 'tasks', 'distinct tasks from'),
    (_meta(seg_classes=[['Left Lung']]), 'seg_classes', 'distinct class names'),
    (_meta(det_classes=[]), 'det_classes', "0 classes, but tasks are \\['cls', 'loc', 'seg'\\]"),
    (_meta(tasks=['cls', 'seg']), 'det_classes', '1 classes, but tasks are'),
    (_meta(cls_classes=['A', 'A']), 'cls_classes', 'distinct class names'),
    (_meta(lr_pairs=[['Left Lung', 'Heart']]), 'lr_pairs[0]',
     'two different class names of this file'),
]


@pytest.mark.parametrize('mutate, key, what', BAD_METAINFO,
                         ids=[f'{key}-{i}' for i, (_, key, _) in enumerate(BAD_METAINFO)])
def test_malformed_metainfo_names_file_and_key(tmp_path, mutate, key, what):
    ann = _annotation()
    mutate(ann)
    path = _write(tmp_path, ann)
    with pytest.raises(ValueError) as err:
        CXRDataset(path)
    assert str(err.value).startswith(f'{path} metainfo.{key}: '), str(err.value)
    assert re.search(what, str(err.value)), str(err.value)


def test_broken_files(tmp_path):
    bad_json = tmp_path / 'bad.json'
    bad_json.write_text('{"metainfo": ')
    with pytest.raises(ValueError, match=f'{bad_json}: not valid JSON'):
        CXRDataset(str(bad_json))
    no_list = _write(tmp_path, dict(metainfo=_annotation()['metainfo']), 'no_list.json')
    with pytest.raises(ValueError, match='must be a JSON object with "metainfo" and '
                                         '"data_list"'):
        CXRDataset(no_list)


def test_bad_arguments(ann_file):
    with pytest.raises(ValueError, match='data_prefix must be dict'):
        CXRDataset(ann_file, data_prefix=dict(img='x'))
    with pytest.raises(ValueError, match='bbox_tolerance'):
        CXRDataset(ann_file, bbox_tolerance=-1)



def _cls_file(tmp_path, labels, name='cls.json'):
    """A cls-only file of dataset 'toy' with one entry per label list."""
    ann = _annotation()
    ann['metainfo'].update(tasks=['cls'], det_classes=[], seg_classes=[], lr_pairs=[])
    ann['data_list'] = [dict(img_path=f'{i}.png', height=H, width=W, cls_label=label)
                        for i, label in enumerate(labels)]
    return _write(tmp_path, ann, name)


@pytest.fixture
def warnings_logged(monkeypatch):
    from fxmm.datasets import cxr_dataset
    logged = []
    monkeypatch.setattr(cxr_dataset, 'print_log', lambda msg, **kwargs: logged.append(msg)
                        if kwargs.get('level') is not None else None)
    return logged


@pytest.mark.parametrize('labels, policy, reason', [
    ([[None, None], [None, None]], 'ignore',
     'no image has a cls label: every one is missing \\(null\\)\\.'),
    ([[-1, None], [None, -1]], 'ignore',
     "no image has a cls label: every one is missing \\(null\\) or uncertain \\(-1, 2 of "
     "them, which label_policy 'ignore' keeps as -1"),
    ([[0, None], [0, 0]], 'ignore', 'no image is positive for any of its 2 classes'),
    ([[None, None], [None, None]], dict(type='ignore', missing_as_zero=True),
     'no image is positive for any of its 2 classes'),
])
def test_training_cls_without_labels_to_learn_from_stops(tmp_path, labels, policy, reason):
    path = _cls_file(tmp_path, labels)
    with pytest.raises(ValueError, match=f"{re.escape(path)}: dataset 'toy', task 'cls', 2 "
                                         f'images: {reason}'):
        CXRDataset(path, label_policy=policy)


def test_what_a_split_without_labels_may_still_do(tmp_path, warnings_logged):
    """Evaluation splits without positives are fine, without any label they warn; soft
    (LSR) uncertain labels are positives to learn from; training classes nobody labels and
    loc/seg training splits without a box/mask warn."""
    negatives = _cls_file(tmp_path, [[0, None], [0, 0]])
    assert len(CXRDataset(negatives, test_mode=True)) == 2 and warnings_logged == []
    unlabelled = _cls_file(tmp_path, [[None, None]], 'unlabelled.json')
    CXRDataset(unlabelled, test_mode=True)
    assert warnings_logged.pop().endswith('no image has a cls label: every one is missing '
                                          '(null): there is nothing to evaluate')
    uncertain = _cls_file(tmp_path, [[-1, None]], 'uncertain.json')
    CXRDataset(uncertain, label_policy='lsr')
    assert warnings_logged.pop().endswith("no image has a label of ['Pneumothorax']: the head "
                                          'does not learn them')
    ann = _annotation()
    for entry in ann['data_list']:
        entry.update(instances=[], seg={})
    empty = _write(tmp_path, ann, 'no_boxes.json')
    assert len(CXRDataset(empty, task='loc')) == 3
    assert warnings_logged.pop().endswith("dataset 'toy', task 'loc', 3 images: no image has a "
                                          'box: the head learns nothing to find')
    CXRDataset(empty, task='seg')
    assert warnings_logged.pop().endswith('no image has a non-empty mask: the head learns '
                                          'nothing to find')
    assert warnings_logged == []
