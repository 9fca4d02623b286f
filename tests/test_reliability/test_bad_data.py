"""Bad data: a missing data root, and images that fail to decode in the middle of training
(skipped and counted through CXRDataset and the real pipeline, an error past the limit).

An annotation file from another version and an empty (dataset, task) pair are covered by
tests/test_datasets/test_cxr_dataset.py (``converter_version``) and
tests/test_datasets/test_multi_task_dataset.py (``pair ... is empty``).
"""
import json

import cv2
import numpy as np
import pytest
import torch

import fxmm.datasets.bad_image_policy as bad_image_policy
from fxmm.datasets.bad_image_policy import BadImageLimitError, BadImagePolicy
from fxmm.datasets.cxr_dataset import ANNOTATION_VERSION, CXRDataset
from fxmm.datasets.image_io import CXRImageError
from fxmm.datasets.multi_task_dataset import MultiTaskDataset
from fxmm.registry import DATASETS

SIZE = 32
PIPELINE = [
    dict(type='LoadCXRImage'),
    dict(type='LoadCXRAnnotations'),
    dict(type='CXRResize', scale=(SIZE, SIZE)),
    dict(type='PackCXRInputs'),
]


def make_dataset(root, name, num_images=6, corrupt=(), missing=()):
    """``root/name``: ``num_images`` 32x32 PNGs and ``annotations/train.json`` (task cls);
    images in ``corrupt`` are cut short, those in ``missing`` are never written."""
    folder = root / name
    (folder / 'images').mkdir(parents=True)
    rng = np.random.default_rng(0)
    data_list = []
    for i in range(num_images):
        img_path = f'images/{i}.png'
        ok, png = cv2.imencode('.png', rng.integers(0, 255, (SIZE, SIZE), dtype=np.uint8))
        if i in corrupt:
            png = png[:60]  # the signature and part of the header: undecodable
        if i not in missing:
            (folder / img_path).write_bytes(png.tobytes())
        data_list.append(dict(img_path=img_path, height=SIZE, width=SIZE,
                              cls_label=[i % 2], patient_id=f'p{i}'))
    metainfo = dict(dataset=name, tasks=['cls'], cls_classes=['nodule'],
                    converter_version=ANNOTATION_VERSION)
    (folder / 'annotations').mkdir()
    (folder / 'annotations/train.json').write_text(
        json.dumps(dict(metainfo=metainfo, data_list=data_list)))
    return str(folder)


def cxr_cfg(data_root, **kwargs):
    return dict(type='CXRDataset', data_root=data_root, ann_file='annotations/train.json',
                pipeline=PIPELINE, **kwargs)


@pytest.fixture
def warnings(monkeypatch):
    """The warnings BadImagePolicy logs."""
    logged = []
    monkeypatch.setattr(bad_image_policy, 'print_log', lambda msg, **kwargs: logged.append(msg))
    return logged


def test_missing_data_root_names_the_paths(tmp_path):
    root = str(tmp_path / 'no_such_root')
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(cxr_cfg(root))
    msg = str(err.value)
    assert f"annotation file '{root}/annotations/train.json' not found" in msg
    assert f"ann_file='annotations/train.json' under data_root='{root}'" in msg
    assert 'a folder that does not exist' in msg


def test_missing_ann_file_in_existing_root(tmp_path):
    root = make_dataset(tmp_path, 'toy')
    with pytest.raises(FileNotFoundError) as err:
        CXRDataset('annotations/val.json', data_root=root)
    assert f"'{root}/annotations/val.json' not found (ann_file='annotations/val.json' " \
           f"under data_root='{root}')" in str(err.value)


def test_bad_image_is_skipped_and_counted(tmp_path, warnings):
    root = make_dataset(tmp_path, 'toy', corrupt={2})
    ds = DATASETS.build(cxr_cfg(root, max_bad_images=3))
    paths = [ds[i]['data_samples'].img_path for i in range(len(ds))]
    bad_path = f'{root}/images/2.png'
    assert bad_path not in paths  # index 2 gave another image of the same dataset
    assert all(p.startswith(f'{root}/images/') for p in paths)
    # one failure, more if the random replacement drew index 2 again
    assert ds.bad_images.count == len(warnings) >= 1
    assert bad_path in warnings[0] and 'OpenCV cannot decode' in warnings[0]
    assert 'skipped a training image (1 of at most 3)' in warnings[0]


def test_limit_exceeded_is_a_clear_error(tmp_path, warnings):
    """Every image is broken: each replacement fails too, until the limit."""
    root = make_dataset(tmp_path, 'toy', num_images=3, corrupt={0, 1}, missing={2})
    ds = CXRDataset('annotations/train.json', data_root=root, pipeline=PIPELINE,
                    max_bad_images=2)
    with pytest.raises(BadImageLimitError) as err:
        ds[0]
    msg = str(err.value)
    assert msg.startswith(f'{root}/annotations/train.json: 3 images failed to load, more '
                          f"than max_bad_images=2; the last: cannot read image '{root}/images/")
    assert 'Check data_root and the image files' in msg
    assert len(warnings) == 2
    with pytest.raises(BadImageLimitError, match=r'1 images failed to load, more than '
                                                  r"max_bad_images=0; .*images/2\.png.*no such"):
        CXRDataset('annotations/train.json', data_root=root, pipeline=PIPELINE,
                   max_bad_images=0)[2]


def test_test_mode_keeps_failing_loudly(tmp_path):
    root = make_dataset(tmp_path, 'toy', corrupt={0})
    ds = CXRDataset('annotations/train.json', data_root=root, pipeline=PIPELINE,
                    test_mode=True)
    with pytest.raises(CXRImageError, match=r'images/0\.png.*OpenCV cannot decode'):
        ds[0]
    assert ds.bad_images.count == 0


def test_count_is_shared_by_dataloader_workers_across_epochs(tmp_path, warnings):
    root = make_dataset(tmp_path, 'toy', corrupt={0, 5})
    ds = CXRDataset('annotations/train.json', data_root=root, pipeline=PIPELINE)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=2, num_workers=2, collate_fn=lambda batch: batch,
        multiprocessing_context='fork')  # workers restart every epoch
    for _ in range(2):
        images = [s['data_samples'].img_path for b in loader for s in b]
        assert len(images) == 6 and not {f'{root}/images/0.png', f'{root}/images/5.png'} & \
            set(images)
    # 2 per epoch (more when a replacement is bad too), counted in the workers
    assert ds.bad_images.count >= 4


def test_skip_stays_inside_the_pair(tmp_path, warnings):
    """A replacement image comes from the same sub-dataset: a batch keeps one pair."""
    good = make_dataset(tmp_path, 'good', num_images=4)
    bad = make_dataset(tmp_path, 'bad', num_images=3, corrupt={0, 2})
    ds = MultiTaskDataset([dict(dataset=cxr_cfg(good), task='cls'),
                           dict(dataset=cxr_cfg(bad), task='cls')])
    for idx in range(4, 7):
        sample = ds[idx]['data_samples']
        assert sample.dataset == 'bad' and sample.img_path == f'{bad}/images/1.png'
    assert ds.datasets[1].bad_images.count == len(warnings) >= 2
    assert ds.datasets[0].bad_images.count == 0


def test_bad_max_bad_images():
    with pytest.raises(ValueError, match='max_bad_images must be an int >= 0, got -1'):
        BadImagePolicy(-1, 'toy')
