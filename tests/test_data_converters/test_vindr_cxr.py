"""VinDr-CXR: readers OR-ed for labels; boxes per reader, WBF-fused or union-fused; the
Kaggle copy (no label tables) and what a training pair on it gets."""
import json
import logging
import os.path as osp

import pytest
from mmengine.config import Config

from data_converters.vindr_cxr import VINDR_LOCAL, VinDrCXRConverter, fuse_boxes
from fixtures import assert_skipped, converted, report_of, write_vindr_cxr, write_vindr_cxr_kaggle
from fxmm.registry import DATASETS as DATASET_REGISTRY

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                   'configs', '_base_', 'datasets')


@pytest.fixture(scope='module')
def vindr(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('vindr') / 'vindr-cxr')
    return root, write_vindr_cxr(root)


@pytest.mark.parametrize('mode', ['per-reader', 'wbf', 'union'])
def test_vindr_cxr(vindr, tmp_path, mode):
    root, truth = vindr
    out = str(tmp_path / mode)
    VinDrCXRConverter(root=root, out=out, boxes=mode).run()
    entries = converted(out)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for image_id, item in good.items():
        entry = entries[image_id]
        assert entry['cls_label'] == item['cls']
        assert (entry['split'] == 'test') == (item['split'] == 'test')
        part = 'test' if item['split'] == 'test' else 'train'
        # --out elsewhere: img_path relative to it
        assert entry['img_path'].startswith('../')
        assert osp.samefile(osp.join(out, entry['img_path']), osp.join(root, part,
                                                                        f'{image_id}.dicom'))
    got = [(i['bbox'], VINDR_LOCAL[i['bbox_label']], i['reader'])
           for i in entries['a']['instances']]
    expected = {
        'per-reader': [([10., 20., 30., 28.], 'Cardiomegaly', 'R8'),
                       ([11., 21., 31., 29.], 'Cardiomegaly', 'R9'),
                       ([2., 2., 6., 6.], 'Nodule/Mass', 'R8')],
        'wbf': [([10.5, 20.5, 30.5, 28.5], 'Cardiomegaly', 'R8,R9'),
                ([2., 2., 6., 6.], 'Nodule/Mass', 'R8')],
        'union': [([10., 20., 31., 29.], 'Cardiomegaly', 'R8,R9'),
                  ([2., 2., 6., 6.], 'Nodule/Mass', 'R8')],
    }[mode]
    assert sorted(got) == sorted(expected)
    assert entries['b']['instances'] == []
    assert [(i['bbox'], i['reader']) for i in entries['c']['instances']] == [
        ([0., 30., 12.5, 40.], None)]
    assert_skipped(out, {k: v['reason'] for k, v in truth.items() if 'reason' in v})


def test_fuse_boxes_clusters_by_iou():
    inst = [dict(bbox=[0, 0, 10, 10], bbox_label=0, reader='R1'),
            dict(bbox=[1, 0, 11, 10], bbox_label=0, reader='R2'),  # IoU 0.82 with the first
            dict(bbox=[30, 30, 40, 40], bbox_label=0, reader='R3'),  # far: own cluster
            dict(bbox=[0, 0, 10, 10], bbox_label=1, reader='R3')]  # other class
    fused = fuse_boxes(inst, 'wbf', iou_thr=0.5)
    assert [(f['bbox'], f['bbox_label'], f['reader']) for f in fused] == [
        ([0.5, 0., 10.5, 10.], 0, 'R1,R2'), ([30., 30., 40., 40.], 0, 'R3'),
        ([0., 0., 10., 10.], 1, 'R3')]
    assert len(fuse_boxes(inst, 'union', iou_thr=0.9)) == 4  # nothing overlaps that much


def test_fuse_boxes_keeps_one_readers_boxes_and_consensus_boxes_apart():
    """Two overlapping boxes of one reader are two findings; a box without a reader (the
    test part's consensus) is never fused; another reader's box joins the closer of them."""
    inst = [dict(bbox=[0, 0, 10, 10], bbox_label=0, reader='R1'),
            dict(bbox=[1, 0, 11, 10], bbox_label=0, reader='R1'),
            dict(bbox=[1, 0, 11, 10], bbox_label=0, reader='R2')]
    fused = fuse_boxes(inst, 'wbf', iou_thr=0.5)
    assert [(f['bbox'], f['reader']) for f in fused] == [
        ([0., 0., 10., 10.], 'R1'), ([1., 0., 11., 10.], 'R1,R2')]
    consensus = [dict(bbox=[0, 0, 10, 10], bbox_label=0, reader=None),
                 dict(bbox=[1, 0, 11, 10], bbox_label=0, reader=None),
                 dict(bbox=[1, 0, 11, 10], bbox_label=0, reader='R2')]
    assert [(f['bbox'], f['reader']) for f in fuse_boxes(consensus, 'union', 0.5)] == [
        ([0., 0., 10., 10.], None), ([1., 0., 11., 10.], None), ([1., 0., 11., 10.], 'R2')]


def test_kaggle_copy_gives_no_finding_and_says_what_it_lacks(tmp_path, monkeypatch):
    """The Kaggle copy (train.csv only): "No finding" from the readers' rows, the other five
    global labels null, said in the report and on the console with the missing test part
    and the local findings without a box; 'cls' stays listed, as it has labels."""
    from data_converters import common
    logged = []
    monkeypatch.setattr(common, 'print_log', lambda msg, **kwargs: logged.append(
        (msg, kwargs.get('level'))))
    root = str(tmp_path / 'vindr-cxr')
    truth = write_vindr_cxr_kaggle(root)
    VinDrCXRConverter(root=root, val_fraction=0.0).run()
    entries = converted(root)
    assert set(entries) == set(truth)  # the unlabelled test/ image is not listed
    assert {e['split'] for e in entries.values()} == {'train'}  # no test part, no val asked
    for image_id, item in truth.items():
        assert entries[image_id]['cls_label'] == item['cls']
        assert sorted((i['bbox'], VINDR_LOCAL[i['bbox_label']])
                      for i in entries[image_id]['instances']) == sorted(item['boxes'])
    with open(osp.join(root, 'annotations', 'train.json')) as f:
        meta = json.load(f)['metainfo']
    assert meta['tasks'] == ['cls', 'loc'] and len(meta['cls_classes']) == 6

    notes = report_of(root)['notes']
    five = "['Lung tumor', 'Pneumonia', 'Tuberculosis', 'Other diseases', 'COPD']"
    label_note = next(n for n in notes if n.startswith('train: train.csv without '
                                                       'image_labels_train.csv'))
    assert f'the global labels {five} are missing (null) for its 3 images' in label_note
    assert "'No finding' is 1 where a reader wrote a 'No finding' row" in label_note
    assert any('no test split is written' in n and 'annotations_test.csv' in n for n in notes)
    assert f'cls: no image has a label of {five} (null in every image)' in notes
    unboxed = next(n for n in notes if n.startswith('loc: no image has a box of'))
    assert "'Edema'" in unboxed and "'Cardiomegaly'" not in unboxed
    warned = [msg for msg, level in logged if level == logging.WARNING]
    assert warned == [f'vindr_cxr: {note}' for note in notes]  # each note on the console


def test_a_cls_pair_on_all_null_labels_fails_at_build_time(tmp_path, monkeypatch):
    """The Kaggle conversion trains its cls pair ('No finding', with a warning naming the
    five unlabelled classes); the same file with every label null (as converters wrote it
    before) stops the dataset build, naming VinDr-CXR."""
    from fxmm.datasets import cxr_dataset
    data_root = tmp_path / 'cxr'
    root = str(data_root / 'vindr-cxr')
    write_vindr_cxr_kaggle(root)
    VinDrCXRConverter(root=root, val_fraction=0.0).run()
    monkeypatch.setenv('FXMM_DATA_ROOT', str(data_root))
    cfg = Config.fromfile(osp.join(CONFIGS, 'foundation_x_data.py'))
    pair = next(p for p in cfg.train_dataloader.dataset.pairs
                if p.task == 'cls' and p.dataset.data_root.endswith('/vindr-cxr/'))
    logged = []
    monkeypatch.setattr(cxr_dataset, 'print_log', lambda msg, **kwargs: logged.append(msg))
    built = DATASET_REGISTRY.build(dict(type='MultiTaskDataset', pairs=[pair]))
    assert built.pair_names == ['vindr_cxr.cls'] and len(built) == 3
    assert logged[-1].endswith("dataset 'vindr_cxr', task 'cls', 3 images: no image has a "
                               "label of ['Lung tumor', 'Pneumonia', 'Tuberculosis', "
                               "'Other diseases', 'COPD']: the head does not learn them")

    path = osp.join(root, 'annotations', 'train.json')
    with open(path) as f:
        ann = json.load(f)
    for entry in ann['data_list']:
        entry['cls_label'] = [None] * 6
    with open(path, 'w') as f:
        json.dump(ann, f)
    with pytest.raises(ValueError, match=r"dataset 'vindr_cxr', task 'cls', 3 images: no "
                                         r'image has a cls label: every one is missing'):
        DATASET_REGISTRY.build(dict(type='MultiTaskDataset', pairs=[pair]))
