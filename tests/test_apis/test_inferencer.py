"""Tests of FXInferencer and tools/infer.py on phantom files with a tiny all-task model (CPU).

The folder holds, in sorted order: a phantom PNG, a corrupt (truncated) DICOM, a phantom
DICOM, a non-square (48 x 96) PNG, and a text file that is not an image. With batch_size=2 the
corrupt file shares its batch with the first PNG.
"""
import copy
import csv
import importlib.util
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData

from data_converters.synthetic import generate_phantom_datasets
from fxmm.apis import CSV_FIELDS, FXInferencer, draw_overlay, find_test_transforms
from fxmm.datasets.transforms.loading import LoadCXRImage
from fxmm.models.teacher_student import select_copy
from fxmm.registry import MODELS
from fxmm.structures.mask_rle import decode_mask
from fxmm.testing import get_tiny_model_cfg
from fxmm.visualization.drawing import PALETTE, to_rgb_uint8

_TOOL = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'infer.py')
_spec = importlib.util.spec_from_file_location('infer_tool', _TOOL)
infer_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(infer_tool)

SIZE = 64
WIDE_HW = (48, 96)  # the non-square image: (H, W)
# what each dataset of the tiny model reports, and how many classes per task
TASKS_OF = dict(nih={'cls'}, siim={'cls', 'loc', 'seg'}, jsrt={'seg'}, tbx={'loc'})
NUM_QUERIES = 10
PANEL_HEADER = round(0.06 * 512)  # draw_overlay's header bar at panel_size=512


def tiny_config() -> Config:
    """fxmm's tiny FoundationX plus a tiny SharedDINO (siim: 1 box class, tbx: 2), so that
    every task is present, and a 64 px test pipeline."""
    model = get_tiny_model_cfg(with_loc=True)
    model.loc_head.test_cfg.max_per_img = NUM_QUERIES
    return Config(dict(
        model=model,
        test_pipeline=[dict(type='LoadCXRImage'), dict(type='LoadCXRAnnotations'),
                       dict(type='CXRResize', scale=SIZE), dict(type='PackCXRInputs')]))


@pytest.fixture(scope='module')
def state_dict():
    """A randomly initialised state dict of the tiny model (local, fixed RNG)."""
    with torch.random.fork_rng(), DefaultScope.overwrite_default_scope('fxmm'):
        torch.manual_seed(0)
        model = MODELS.build(tiny_config().model)
        model.init_weights()
    return model.state_dict()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, state_dict):
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny.pth')
    torch.save(dict(state_dict=state_dict, meta=dict(note='tiny')), path)
    return path


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """Phantom files: {'png', 'corrupt', 'dcm', 'wide', 'text'} -> path, all in one folder."""
    root = tmp_path_factory.mktemp('phantoms')
    generate_phantom_datasets(str(root / 'src'), num_train=1, num_val=1, num_test=1,
                              size=SIZE, seed=0, datasets=['phantom_cls', 'phantom_ptx'])
    folder = root / 'inputs'
    folder.mkdir()
    src_png = root / 'src/phantom_cls/images/test/phantom_cls_test_0000.png'
    src_dcm = root / 'src/phantom_ptx/images/test/phantom_ptx_test_0000.dcm'
    paths = dict(png=folder / 'a_chest.png', corrupt=folder / 'b_corrupt.dcm',
                 dcm=folder / 'c_scan.dcm', wide=folder / 'd_wide.png',
                 text=folder / 'notes.txt')
    paths['png'].write_bytes(src_png.read_bytes())
    paths['dcm'].write_bytes(src_dcm.read_bytes())
    dcm_bytes = src_dcm.read_bytes()
    paths['corrupt'].write_bytes(dcm_bytes[:len(dcm_bytes) // 2])  # pixel data cut short
    wide = cv2.resize(cv2.imread(str(src_png), cv2.IMREAD_UNCHANGED), WIDE_HW[::-1],
                      interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(paths['wide']), wide)
    paths['text'].write_text('not an image')
    return {key: str(path) for key, path in paths.items()}


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    return FXInferencer(tiny_config(), checkpoint, device='cpu', score_thr=0.,
                        batch_size=2, show_progress=False)


def read_png(path: str) -> np.ndarray:
    """An overlay as RGB."""
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_a_folder_with_a_corrupt_dicom_gives_3_results_1_error_and_every_output(
        inferencer, files, tmp_path, capsys):
    inferencer.show_progress = True
    try:
        out = inferencer(osp.dirname(files['png']), out_dir=str(tmp_path / 'out'))
    finally:
        inferencer.show_progress = False
    assert '4/4' in capsys.readouterr().out  # the progress bar counted every file

    # the corrupt DICOM is reported by name with its reason; its batch mate still ran
    assert [r['img_path'] for r in out['predictions']] == [
        files['png'], files['dcm'], files['wide']]
    assert len(out['errors']) == 1
    error = out['errors'][0]
    assert error['img_path'] == files['corrupt']
    assert files['corrupt'] in error['error'] and 'pixel data' in error['error']

    for result in out['predictions']:
        assert {name: set(preds) for name, preds in result['datasets'].items()} == TASKS_OF
        siim, nih = result['datasets']['siim'], result['datasets']['nih']
        assert list(nih['cls']) == ['Atelectasis', 'Cardiomegaly', 'Effusion']
        assert all(0 < p < 1 for p in nih['cls'].values())
        assert len(siim['loc']) == NUM_QUERIES  # score_thr=0 keeps every box
        h, w = result['ori_shape']
        for mask in result['datasets']['jsrt']['seg'].values():
            assert mask['rle']['size'] == [h, w]
            assert decode_mask(mask['rle']).sum() == mask['area_px']
    assert out['predictions'][2]['ori_shape'] == list(WIDE_HW)

    # predictions.json holds the results and the error
    with open(tmp_path / 'out' / 'predictions.json') as f:
        saved = json.load(f)
    assert saved['predictions'] == json.loads(json.dumps(out['predictions']))
    assert saved['errors'] == out['errors']
    assert saved['meta']['score_thr'] == 0. and saved['meta']['model_copy'] is None

    # predictions.csv: per image 4 cls rows (nih 3 + siim 1), 4 seg rows (siim 1 + jsrt 3),
    # 20 box rows (siim and tbx, 10 each), plus one error row
    with open(tmp_path / 'out' / 'predictions.csv', newline='') as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_FIELDS
        rows = list(reader)
    for path in (files['png'], files['dcm'], files['wide']):
        tasks = [row['task'] for row in rows if row['img_path'] == path]
        assert (tasks.count('cls'), tasks.count('seg'), tasks.count('loc')) == (4, 4, 20)
    error_rows = [row for row in rows if row['error']]
    assert len(error_rows) == 1 and error_rows[0]['img_path'] == files['corrupt']
    first = out['predictions'][0]
    effusion = next(row for row in rows if row['img_path'] == files['png']
                    and row['class'] == 'Effusion')
    assert float(effusion['score']) == pytest.approx(first['datasets']['nih']['cls']['Effusion'])

    # overlays: 4 panels in a row, each a 512 px image under a header bar
    overlays = sorted(os.listdir(tmp_path / 'out' / 'overlays'))
    assert overlays == ['a_chest.png', 'c_scan.png', 'd_wide.png']
    assert read_png(first['overlay']).shape == (PANEL_HEADER + 512, 4 * 512, 3)
    assert read_png(out['predictions'][2]['overlay']).shape == (PANEL_HEADER + 256, 4 * 512, 3)
    assert not [name for name in os.listdir(tmp_path / 'out') if '.tmp' in name]


def test_boxes_are_in_original_pixels_of_a_non_square_image(inferencer, files, monkeypatch):
    """JSON boxes = the network's boxes on the 64 x 64 input divided by the per-axis scale
    (64 / 96 in x, 64 / 48 in y)."""
    head = inferencer.model.loc_head
    in_input_pixels = {}
    real_predict = head.predict_datasets  # what predict(heads='all') calls

    def spy(feats, data_samples, datasets, rescale=True):
        in_input_pixels.update(real_predict(feats, data_samples, datasets, rescale=False))
        return real_predict(feats, data_samples, datasets, rescale=rescale)

    monkeypatch.setattr(head, 'predict_datasets', spy)
    result = inferencer(files['wide'])['predictions'][0]  # a single file
    scale = torch.tensor([SIZE / WIDE_HW[1], SIZE / WIDE_HW[0]] * 2)
    for dataset in ('siim', 'tbx'):
        raw = in_input_pixels[dataset][0]
        expected = raw.bboxes / scale
        boxes = torch.tensor([box['bbox'] for box in result['datasets'][dataset]['loc']])
        assert torch.allclose(boxes, expected, atol=0.006)
        assert [box['score'] for box in result['datasets'][dataset]['loc']] == pytest.approx(
            raw.scores.tolist())
        assert (boxes[:, 1::2] <= WIDE_HW[0]).all() and (boxes[:, 0::2] <= WIDE_HW[1]).all()
    assert {box['label'] for box in result['datasets']['tbx']['loc']} <= {
        'ActiveTuberculosis', 'ObsoleteTuberculosis'}


def test_list_and_single_file_inputs_task_and_dataset_subsets(inferencer, files, tmp_path):
    missing = str(tmp_path / 'missing.png')
    out = inferencer([files['wide'], missing, files['png']], heads=['cls'])
    assert [r['img_path'] for r in out['predictions']] == [files['wide'], files['png']]
    assert out['errors'][0]['img_path'] == missing and 'no such file' in out['errors'][0]['error']
    # cls only: the seg-only and loc-only datasets drop out
    assert {name: set(p) for name, p in out['predictions'][1]['datasets'].items()} == dict(
        nih={'cls'}, siim={'cls'})
    # the same image alone (batch of one) gives the same probabilities
    alone = inferencer(files['png'], datasets=['nih'])['predictions']
    assert len(alone) == 1 and list(alone[0]['datasets']) == ['nih']
    assert alone[0]['datasets']['nih']['cls'] == pytest.approx(
        out['predictions'][1]['datasets']['nih']['cls'], abs=1e-5)
    # a DICOM file
    dcm = inferencer(files['dcm'])['predictions']
    assert dcm[0]['img_path'] == files['dcm'] and dcm[0]['ori_shape'] == [SIZE, SIZE]
    assert not os.listdir(tmp_path)  # no out_dir: nothing written

    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['vindr'\]"):
        inferencer(files['png'], datasets=['vindr'])
    with pytest.raises(ValueError, match="unknown task 'det'"):
        inferencer(files['png'], heads=['det'])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image files in folder'):
        inferencer(str(tmp_path / 'empty'))


def test_folder_scan_finds_images_recursively_and_skips_the_output_folder(
        inferencer, tmp_path):
    for name in ('b.PNG', 'series/IM0001', 'series/a.dcm', 'series/1.2.840.10008', 'notes.txt',
                 '.hidden.png',
                 'out/overlays/b.png', 'scan.mhd', 'scan.raw'):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b'')
    found = inferencer._inputs_to_list(str(tmp_path), exclude=str(tmp_path / 'out'))
    assert [osp.relpath(p, tmp_path) for p in found] == [
        'b.PNG', 'scan.mhd', 'series/1.2.840.10008', 'series/IM0001', 'series/a.dcm']
    # a list mixes files and folders, in its order
    assert inferencer._inputs_to_list([str(tmp_path / 'notes.txt'), str(tmp_path / 'series')]) \
        == [str(tmp_path / 'notes.txt'), str(tmp_path / 'series/1.2.840.10008'),
            str(tmp_path / 'series/IM0001'), str(tmp_path / 'series/a.dcm')]


def fake_predict(inputs, data_samples, heads='task'):
    """Known outputs in original pixels of each sample: siim has a box of score 0.9, one of
    0.1 (below score_thr) and a mask; the other datasets predict nothing visible."""
    assert heads == 'all'
    for sample in data_samples:
        h, w = sample.ori_shape
        mask = torch.zeros(1, h, w, dtype=torch.bool)
        mask[:, 28:46, 50:90] = True
        sample.set_field(dict(
            nih=dict(cls=torch.tensor([0.1, 0.8, 0.3])),
            siim=dict(cls=torch.tensor([0.87]),
                      loc=InstanceData(bboxes=torch.tensor([[10., 8., 40., 30.],
                                                            [60., 2., 90., 20.]]),
                                       scores=torch.tensor([0.9, 0.1]),
                                       labels=torch.tensor([0, 0])),
                      seg=PixelData(data=mask, score=mask.float())),
            jsrt=dict(seg=PixelData(data=torch.zeros(3, h, w, dtype=torch.bool))),
            tbx=dict(loc=InstanceData(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                                      labels=torch.zeros(0, dtype=torch.long)))), 'all_preds')
    return data_samples


def test_overlay_draws_the_predicted_boxes_and_masks_at_their_pixels(
        inferencer, files, tmp_path, monkeypatch):
    monkeypatch.setattr(inferencer.model, 'predict', fake_predict)
    monkeypatch.setattr(inferencer, 'score_thr', 0.3)
    monkeypatch.setattr(inferencer, 'panel_size', None)  # panels keep the original pixels
    out = inferencer(files['wide'], out_dir=str(tmp_path), datasets=['siim'])
    result = out['predictions'][0]
    siim = result['datasets']['siim']
    assert siim['cls'] == {'Pneumothorax': pytest.approx(0.87)}
    assert siim['loc'] == [dict(bbox=[10., 8., 40., 30.], label='Pneumothorax',
                                score=pytest.approx(0.9))]
    assert siim['seg']['Pneumothorax']['area_px'] == 18 * 40
    expected_mask = np.zeros(WIDE_HW, dtype=np.uint8)
    expected_mask[28:46, 50:90] = 1
    np.testing.assert_array_equal(decode_mask(siim['seg']['Pneumothorax']['rle']),
                                  expected_mask)
    with open(tmp_path / 'predictions.csv', newline='') as f:
        box_row = next(row for row in csv.DictReader(f) if row['task'] == 'loc')
    assert [float(box_row[k]) for k in ('x1', 'y1', 'x2', 'y2')] == [10., 8., 40., 30.]

    overlay = read_png(result['overlay'])
    header = 16  # max(16, 0.06 * 96)
    assert overlay.shape == (header + WIDE_HW[0], WIDE_HW[1], 3)  # one panel: siim
    panel = overlay[header:].astype(int)
    grey = to_rgb_uint8(LoadCXRImage()(dict(img_path=files['wide']))['img']).astype(int)
    red = PALETTE[0].astype(int)  # class 0 of siim's det and seg classes
    np.testing.assert_array_equal(panel[20, 10], red)  # left edge of the 0.9 box
    np.testing.assert_array_equal(panel[20, 40], red)  # right edge
    np.testing.assert_array_equal(panel[10, 90], grey[10, 90])  # the 0.1 box is not drawn
    np.testing.assert_array_equal(panel[40, 20], grey[40, 20])  # nothing drawn there
    np.testing.assert_allclose(panel[44, 52], 0.6 * grey[44, 52] + 0.4 * red, atol=1)

    # at panel_size=192 every coordinate doubles: box edge x = 20, mask from row 56, col 100
    big = draw_overlay(grey[..., 0], result, inferencer.model.class_names, panel_size=192)
    header = 16  # max(16, 0.06 * 192)
    assert big.shape == (header + 96, 192, 3)
    big = big[header:].astype(int)
    np.testing.assert_array_equal(big[40, 20], red)
    np.testing.assert_array_equal(big[40, 80], red)
    assert big[90, 102, 0] > big[90, 102, 1] + 50  # red-tinted inside the mask
    np.testing.assert_array_equal(big[90, 40, 0], big[90, 40, 1])  # grey outside


def test_teacher_student_config_and_checkpoint_load_the_teacher(
        state_dict, files, tmp_path):
    # a TeacherStudent checkpoint: the teacher differs from the student by +1
    ts_state = {'progress': torch.tensor(0.5)}
    for key, value in state_dict.items():
        ts_state[f'student.{key}'] = value
        ts_state[f'teacher.{key}'] = value + 1 if value.is_floating_point() else value
    path = str(tmp_path / 'ts.pth')
    torch.save(dict(state_dict=ts_state), path)
    cfg = tiny_config()
    cfg.model = dict(type='TeacherStudent', model=cfg.model)
    inferencer = FXInferencer(cfg, path, device='cpu', show_progress=False)
    assert type(inferencer.model).__name__ == 'FoundationX'
    assert inferencer.loaded_copy == 'teacher'
    key = 'cls_head.heads.nih.weight'
    assert torch.equal(inferencer.model.state_dict()[key], state_dict[key] + 1)
    assert len(inferencer(files['png'])['predictions']) == 1

    # selecting a copy: the student on request, a missing copy is an error
    student, copy_name = select_copy(ts_state, 'student')
    assert copy_name == 'student' and set(student) == set(state_dict)
    assert torch.equal(student[key], state_dict[key])
    plain, copy_name = select_copy(state_dict)
    assert copy_name is None and plain is state_dict
    with pytest.raises(ValueError, match=r"no teacher copy \(its copies: \['student'\]\)"):
        select_copy({f'student.{key}': state_dict[key]}, 'teacher')


def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_keys(state_dict, tmp_path):
    broken = copy.copy(state_dict)
    del broken['cls_head.heads.nih.weight']
    path = str(tmp_path / 'broken.pth')
    torch.save(dict(state_dict=broken), path)
    with pytest.raises(RuntimeError,
                       match=r'(?s)broken.pth.*missing keys.*cls_head.heads.nih.weight'):
        FXInferencer(tiny_config(), path, device='cpu')


def test_the_input_size_comes_from_the_config_or_img_size():
    demo = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', 'configs',
                                    'foundation_x_demo.py'))
    found = find_test_transforms(demo)
    assert found['CXRResize']['scale'] == (128, 128)
    assert found['LoadCXRImage']['type'] == 'LoadCXRImage'

    assert found['LoadCXRImage']['defer_norm']

    cfg = tiny_config()
    cfg.test_pipeline = [dict(type='LoadCXRImage', intensity_norm='percentile',
                              defer_norm=True)]
    with pytest.raises(ValueError, match='pass img_size'):
        FXInferencer(cfg, None, device='cpu')
    inferencer = FXInferencer(cfg, None, device='cpu', img_size=(96, 32))
    assert inferencer.loader.intensity_norm == 'percentile'  # the config's loading settings
    # but normalised at once: the overlays are drawn on the whole image
    assert not inferencer.loader.defer_norm
    assert inferencer.pipeline.transforms[0].scale == (96, 32)


def test_cli_writes_outputs_and_summarises(files, checkpoint, tmp_path, capsys):
    config = str(tmp_path / 'tiny_cfg.py')
    tiny_config().dump(config)
    out_dir = str(tmp_path / 'out')
    status = infer_tool.main([osp.dirname(files['png']), '--config', config, '--weights',
                              checkpoint, '--out-dir', out_dir, '--device', 'cpu',
                              '--batch-size', '3', '--datasets', 'siim', 'nih',
                              '--no-overlays'])
    assert status == 0
    printed = capsys.readouterr().out
    assert '3 image(s) ok, 1 failed' in printed
    assert f"FAILED {files['corrupt']}: " in printed
    with open(osp.join(out_dir, 'predictions.json')) as f:
        saved = json.load(f)
    assert len(saved['predictions']) == 3 and len(saved['errors']) == 1
    assert all(list(r['datasets']) == ['siim', 'nih'] for r in saved['predictions'])
    assert sorted(os.listdir(out_dir)) == ['predictions.csv', 'predictions.json']

    # every file failing gives status 1
    assert infer_tool.main([files['corrupt'], '--config', config, '--weights', checkpoint,
                            '--out-dir', out_dir, '--device', 'cpu']) == 1
