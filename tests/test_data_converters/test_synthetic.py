"""Tests of the synthetic chest X-ray phantoms (data_converters/synthetic.py)."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pydicom
import pytest
from pycocotools import mask as mask_utils
from pydicom.uid import ExplicitVRLittleEndian
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from data_converters.phantom_drawing import cardiothoracic_ratio
from data_converters.synthetic import (ANNOTATION_VERSION, CARDIOMEGALY_RATIO,
                                       FIELD_OF_VIEW_MM, LESION_TYPES, PHANTOM_DATASETS,
                                       draw_phantom, generate_phantom_datasets, main)
from fxmm.datasets.cxr_dataset import CXRDataset
from fxmm.datasets.image_io import read_cxr_image

SIZE = 64
COUNTS = dict(num_train=10, num_val=6, num_test=6)
EXTENSIONS = dict(png8='.png', png16='.png', dicom='.dcm')


@pytest.fixture(scope='module')
def phantoms(tmp_path_factory):
    """All four datasets, seed 0: (out dir, {name: {split: ann file}})."""
    out = str(tmp_path_factory.mktemp('phantoms'))
    return out, generate_phantom_datasets(out, size=SIZE, seed=0, **COUNTS)


def _load_ann(path):
    with open(path) as f:
        return json.load(f)


def _entries(phantoms, name):
    """(dataset root, metainfo, entry) for every entry of every split of ``name``."""
    out, files = phantoms
    for path in files[name].values():
        ann = _load_ann(path)
        for entry in ann['data_list']:
            yield osp.join(out, name), ann['metainfo'], entry


def _read_image(path):
    """Display image float (H, W) in 0..1 (bright = dense), decoded the way a loader must."""
    if path.endswith('.png'):
        pixels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        return pixels.astype(np.float64) / np.iinfo(pixels.dtype).max
    ds = pydicom.dcmread(path)
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    top = 2**ds.BitsStored - 1
    if ds.PhotometricInterpretation == 'MONOCHROME1':
        values = top - values
    return values / top


def _component_boxes(mask):
    """[x1, y1, x2, y2] (x2 = max x + 1) of each 8-connected component, sorted."""
    labels, num = ndimage.label(mask, structure=np.ones((3, 3)))
    boxes = []
    for k in range(1, num + 1):
        rows, cols = np.nonzero(labels == k)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    return sorted(boxes)


def _decode(rle):
    return mask_utils.decode({'size': rle['size'], 'counts': rle['counts'].encode()}).astype(bool)


def test_layout_and_metainfo(phantoms):
    out, files = phantoms
    assert sorted(files) == sorted(PHANTOM_DATASETS)
    patients = set()
    for name, spec in PHANTOM_DATASETS.items():
        assert sorted(files[name]) == ['test', 'train', 'val']
        for split, path in files[name].items():
            assert path == osp.join(out, name, 'annotations', f'{split}.json')
            ann = _load_ann(path)
            meta = ann['metainfo']
            assert meta['dataset'] == name
            assert meta['tasks'] == list(spec.tasks)
            assert meta['cls_classes'] == list(spec.cls_classes)
            assert meta['det_classes'] == list(spec.det_classes)
            assert meta['seg_classes'] == list(spec.seg_classes)
            assert meta['converter_version'] == ANNOTATION_VERSION == 1
            assert ('lr_pairs' in meta) == (name == 'phantom_seg')
            assert len(ann['data_list']) == COUNTS[f'num_{split}']
            for entry in ann['data_list']:
                assert entry['img_path'].startswith(f'images/{split}/')
                assert entry['img_path'].endswith(EXTENSIONS[spec.image_format])
                assert osp.isfile(osp.join(out, name, entry['img_path']))
                assert entry['pixel_spacing'] == [FIELD_OF_VIEW_MM / SIZE] * 2
                patients.add(entry['patient_id'])
    assert len(patients) == len(PHANTOM_DATASETS) * sum(COUNTS.values())  # one per image
    assert [n for n in os.listdir(out) if n.startswith('.')] == []  # no staging left


def test_entries_match_images_and_masks(phantoms):
    for name, spec in PHANTOM_DATASETS.items():
        labels = []
        for root, meta, entry in _entries(phantoms, name):
            image = _read_image(osp.join(root, entry['img_path']))
            h, w = entry['height'], entry['width']
            assert image.shape == (h, w) == (SIZE, SIZE)
            assert 0.0 <= image.min() < image.max() <= 1.0
            assert len(entry['cls_label']) == len(spec.cls_classes)
            assert set(entry['cls_label']) <= {0, 1}
            labels.append(entry['cls_label'])
            masks = {cls: _decode(rle) for cls, rle in entry['seg'].items()}
            assert sorted(masks) == sorted(spec.seg_classes)
            assert all(m.shape == (h, w) for m in masks.values())
            boxes = {}
            for inst in entry['instances']:
                x1, y1, x2, y2 = inst['bbox']
                assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h, inst
                boxes.setdefault(spec.det_classes[inst['bbox_label']], []).append(inst['bbox'])
            assert ('loc' in spec.tasks) or not boxes
            for cls in spec.det_classes:  # loc and cls agree
                assert entry['cls_label'][spec.cls_classes.index(cls)] == int(cls in boxes)
                if cls in masks:  # each box is the tight box of one mask component
                    assert sorted(boxes.get(cls, [])) == _component_boxes(masks[cls])
            for cls in set(spec.seg_classes) & set(LESION_TYPES):
                assert entry['cls_label'][spec.cls_classes.index(cls)] == int(masks[cls].any())
        # both labels occur for every class
        labels = np.array(labels)
        assert (labels.sum(axis=0) > 0).all() and (labels.sum(axis=0) < len(labels)).all()


def test_positive_fraction_and_empty_images(phantoms):
    ptx = [e['cls_label'][0] for _, _, e in _entries(phantoms, 'phantom_ptx')]
    assert sum(ptx) == sum(round(0.5 * n) for n in COUNTS.values())  # exactly half
    loc = [len(e['instances']) for _, _, e in _entries(phantoms, 'phantom_loc')]
    assert min(loc) == 0 and max(loc) >= 2  # some images without lesions, some with several


def test_lateral_anatomy_and_cardiomegaly(phantoms):
    for root, meta, entry in _entries(phantoms, 'phantom_seg'):
        assert meta['lr_pairs'] == [['left_lung', 'right_lung']]
        masks = {cls: _decode(rle) for cls, rle in entry['seg'].items()}
        centre_x = {cls: ndimage.center_of_mass(m)[1] for cls, m in masks.items()}
        # PA view: the patient's right lung is on the image's left, the heart bulges right
        assert centre_x['right_lung'] < SIZE / 2 < centre_x['left_lung']
        assert centre_x['heart'] > (centre_x['right_lung'] + centre_x['left_lung']) / 2
        ratio = cardiothoracic_ratio(masks)
        assert entry['cls_label'] == [int(ratio > CARDIOMEGALY_RATIO)]
        image = _read_image(osp.join(root, entry['img_path']))
        lungs = masks['right_lung'] | masks['left_lung']
        assert image[lungs].mean() < image[masks['heart'] & ~lungs].mean() - 0.25  # air is dark


def test_dicom_files(phantoms):
    photometric = []
    for name in ('phantom_loc', 'phantom_ptx'):
        for root, _, entry in _entries(phantoms, name):
            path = osp.join(root, entry['img_path'])
            ds = pydicom.dcmread(path)
            assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
            assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
            assert [float(v) for v in ds.PixelSpacing] == entry['pixel_spacing']
            assert ds.PatientID == entry['patient_id']
            assert (ds.Rows, ds.Columns) == (entry['height'], entry['width'])
            assert ds.pixel_array.dtype == np.uint16 and ds.pixel_array.max() <= 4095
            photometric.append(ds.PhotometricInterpretation)
            # the abdomen (bottom centre) is denser than the lungs once displayed right,
            # and a MONOCHROME1 file shows the opposite unless it is inverted
            image = _read_image(path)
            abdomen = image[int(0.92 * SIZE):, int(0.4 * SIZE):int(0.6 * SIZE)].mean()
            lungs = np.concatenate([
                image[int(0.35 * SIZE):int(0.5 * SIZE), int(0.22 * SIZE):int(0.32 * SIZE)],
                image[int(0.35 * SIZE):int(0.5 * SIZE), int(0.68 * SIZE):int(0.78 * SIZE)]])
            assert abdomen > lungs.mean() + 0.15, path
            raw = ds.pixel_array / 4095
            raw_abdomen = raw[int(0.92 * SIZE):, int(0.4 * SIZE):int(0.6 * SIZE)].mean()
            inverted = ds.PhotometricInterpretation == 'MONOCHROME1'
            assert (raw_abdomen < raw.mean()) == inverted
    assert set(photometric) == {'MONOCHROME1', 'MONOCHROME2'}


def test_read_by_cxr_dataset_and_image_reader(phantoms):
    out, files = phantoms
    photometric = set()
    for name, spec in PHANTOM_DATASETS.items():
        for task in spec.tasks:
            dataset = CXRDataset(files[name]['val'], data_root=osp.join(out, name), task=task)
            assert len(dataset) == COUNTS['num_val']
            assert (dataset.get_data_info(0)['dataset'], dataset.get_data_info(0)['task']) == (
                name, task)
        for i in range(len(dataset)):
            path = dataset.get_data_info(i)['img_path']
            image, meta = read_cxr_image(path)
            photometric.add(meta.get('photometric'))
            # the same picture, the same way up (the reader inverts MONOCHROME1)
            assert np.corrcoef(image.ravel(), _read_image(path).ravel())[0, 1] > 0.999, path
            if spec.image_format == 'dicom':
                assert meta['pixel_spacing'] == pytest.approx([FIELD_OF_VIEW_MM / SIZE] * 2)
    assert {'MONOCHROME1', 'MONOCHROME2'} <= photometric


def _read_all(root):
    """{relative path: bytes} of every file under ``root``."""
    files = {}
    for folder, _, names in os.walk(root):
        for fname in names:
            with open(osp.join(folder, fname), 'rb') as f:
                files[osp.relpath(osp.join(folder, fname), root)] = f.read()
    return files


def test_deterministic_by_seed(phantoms, tmp_path):
    out, _ = phantoms
    generate_phantom_datasets(str(tmp_path / 'again'), size=SIZE, seed=0, **COUNTS)
    other = generate_phantom_datasets(str(tmp_path / 'other'), size=SIZE, seed=1, **COUNTS)
    first, second = _read_all(out), _read_all(str(tmp_path / 'again'))
    assert sorted(first) == sorted(second)
    assert all(first[path] == second[path] for path in first)  # JSON, PNG and DICOM bytes
    for name in PHANTOM_DATASETS:
        ann_0 = _load_ann(osp.join(out, name, 'annotations', 'train.json'))
        ann_1 = _load_ann(other[name]['train'])
        assert ann_0['data_list'] != ann_1['data_list']
        path = ann_0['data_list'][0]['img_path']
        image_0 = _read_image(osp.join(out, name, path))
        image_1 = _read_image(osp.join(tmp_path, 'other', name, path))
        assert np.abs(image_0 - image_1).mean() > 0.01


def test_draw_phantom_outputs():
    lesions = ['nodule', 'nodule', 'mass', 'consolidation', 'effusion', 'pneumothorax']
    image, masks, boxes = draw_phantom(np.random.default_rng(3), 96, lesions)
    again = draw_phantom(np.random.default_rng(3), 96, lesions)
    assert np.array_equal(image, again[0]) and boxes == again[2]
    assert image.dtype == np.float32 and image.shape == (96, 96)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert sorted(masks) == sorted(('right_lung', 'left_lung', 'heart') + LESION_TYPES)
    lungs = masks['right_lung'] | masks['left_lung']
    for name in LESION_TYPES:
        assert masks[name].any(), name
        assert not (masks[name] & ~lungs).any(), name  # clipped to the lungs
        assert sorted(b['bbox'] for b in boxes if b['label'] == name) == _component_boxes(
            masks[name])
    assert sum(b['label'] == 'nodule' for b in boxes) == 2
    # a healthy chest has empty lesion masks and no boxes
    _, masks, boxes = draw_phantom(np.random.default_rng(4), 64)
    assert boxes == [] and not any(masks[name].any() for name in LESION_TYPES)
    with pytest.raises(ValueError, match='tumour'):
        draw_phantom(np.random.default_rng(0), 64, ['tumour'])


@pytest.mark.parametrize('lesion,sign', [('nodule', 1), ('mass', 1), ('consolidation', 1),
                                         ('effusion', 1), ('pneumothorax', -1)])
def test_lesion_contrast_against_surrounding_lung(lesion, sign):
    diffs = []
    for seed in range(8):
        image, masks, _ = draw_phantom(np.random.default_rng(seed), 96, [lesion])
        mask = masks[lesion]
        lungs = masks['right_lung'] | masks['left_lung']
        ring = ndimage.binary_dilation(mask, iterations=4) & lungs & ~mask & ~masks['heart']
        diffs.append(image[mask].mean() - image[ring].mean())
    assert sign * np.mean(diffs) > 0.02, diffs


def _lesion_stats(lesion, size, contrast, seeds=range(6)):
    """Mean mask area (pixels) and |contrast| against the surrounding lung at 96 px."""
    areas, diffs = [], []
    for seed in seeds:
        image, masks, _ = draw_phantom(np.random.default_rng(seed), 96, [lesion],
                                       lesion_size=size, lesion_contrast=contrast)
        mask = masks[lesion]
        lungs = masks['right_lung'] | masks['left_lung']
        ring = ndimage.binary_dilation(mask, iterations=4) & lungs & ~mask & ~masks['heart']
        areas.append(mask.sum())
        diffs.append(abs(image[mask].mean() - image[ring].mean()))
    return np.mean(areas), np.mean(diffs)


@pytest.mark.parametrize('lesion', ['nodule', 'effusion', 'pneumothorax'])
def test_lesion_size_and_contrast_are_parameters(lesion):
    area, diff = _lesion_stats(lesion, 1.0, 1.0)
    larger, _ = _lesion_stats(lesion, 1.5, 1.0)
    _, denser = _lesion_stats(lesion, 1.0, 2.0)
    # a radius 1.5x gives ~2.25x the nodule's area; the diffuse lesions grow less than that
    assert larger > (2.0 if lesion == 'nodule' else 1.2) * area
    assert denser > 1.3 * diff


def test_lesion_style_is_written_and_checked(tmp_path):
    files = generate_phantom_datasets(str(tmp_path), 2, 1, 1, size=32, datasets=['phantom_cls'],
                                      lesion_size=1.5, lesion_contrast=2)
    meta = _load_ann(files['phantom_cls']['val'])['metainfo']
    assert 'seed 0, lesion size 1.5, lesion contrast 2)' in meta['source']
    with pytest.raises(ValueError, match='lesion_contrast must be a positive number'):
        draw_phantom(np.random.default_rng(0), 64, lesion_contrast=0)
    with pytest.raises(SystemExit, match='lesion_size must be a positive number, got -1'):
        main(['--out', str(tmp_path / 'x'), '--lesion-size', '-1'])


def _pixel_features(lesion, n, seed):
    """16x16 standardised pixels of ``n`` 64-px phantoms, half with ``lesion``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    features = []
    for label in labels:
        image, _, _ = draw_phantom(rng, 64, [lesion] * label)
        small = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA).ravel()
        features.append((small - small.mean()) / small.std())
    return np.array(features), labels


def _val_auc(lesion):
    x_train, y_train = _pixel_features(lesion, 400, 0)
    x_val, y_val = _pixel_features(lesion, 160, 1)
    model = LogisticRegression(C=0.1, max_iter=2000).fit(x_train, y_train)
    return roc_auc_score(y_val, model.decision_function(x_val))


def test_learnable_but_not_trivial():
    assert 0.6 < _val_auc('mass') < 0.99
    assert _val_auc('nodule') < 0.9


def test_refuses_to_overwrite(tmp_path):
    out = str(tmp_path)
    files = generate_phantom_datasets(out, 3, 2, 2, size=32, datasets=['phantom_seg'])
    path = files['phantom_seg']['train']
    before = _read_all(out)
    with pytest.raises(FileExistsError, match='phantom_seg'):
        generate_phantom_datasets(out, 5, 2, 2, size=32, datasets=['phantom_cls', 'phantom_seg'])
    assert _read_all(out) == before and not osp.exists(osp.join(out, 'phantom_cls'))
    generate_phantom_datasets(out, 5, 2, 2, size=32, datasets=['phantom_seg'], overwrite=True)
    assert len(_load_ann(path)['data_list']) == 5
    assert len(os.listdir(osp.join(out, 'phantom_seg', 'images', 'train'))) == 5
    assert sorted(os.listdir(out)) == ['phantom_seg']


def test_cli_and_argument_errors(tmp_path):
    out = str(tmp_path / 'cli')
    files = main(['--out', out, '--num-train', '2', '--num-val', '2', '--num-test', '2',
                  '--size', '32', '--seed', '3', '--datasets', 'phantom_cls', 'phantom_ptx'])
    assert sorted(files) == ['phantom_cls', 'phantom_ptx']
    assert len(_load_ann(files['phantom_ptx']['val'])['data_list']) == 2
    with pytest.raises(SystemExit, match='already exist.*--overwrite'):
        main(['--out', out, '--datasets', 'phantom_cls'])
    with pytest.raises(SystemExit):
        main(['--out', out, '--datasets', 'phantom_xyz'])
    with pytest.raises(ValueError, match='num_val'):
        generate_phantom_datasets(str(tmp_path / 'a'), num_val=0)
    with pytest.raises(ValueError, match='jpeg'):
        generate_phantom_datasets(str(tmp_path / 'b'), formats=dict(phantom_cls='jpeg'))
    files = generate_phantom_datasets(str(tmp_path / 'c'), 2, 2, 2, size=32,
                                      formats=dict(phantom_cls='dicom'),
                                      datasets=['phantom_cls'])
    entry = _load_ann(files['phantom_cls']['train'])['data_list'][0]
    assert pydicom.dcmread(osp.join(tmp_path, 'c', 'phantom_cls', entry['img_path'])).Rows == 32
