"""VinDr-CXR: readers OR-ed for labels; boxes per reader, WBF-fused or union-fused."""
import os.path as osp

import pytest

from data_converters.vindr_cxr import VINDR_LOCAL, VinDrCXRConverter, fuse_boxes
from fixtures import assert_skipped, converted, write_vindr_cxr


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
