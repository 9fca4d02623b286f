"""Tests of tools/prepare_images.py: the command a user runs over annotation files."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np

from fxmm.datasets.image_io import read_cxr_image
from fxmm.testing import run_python

ROOT = osp.join(osp.dirname(__file__), '..', '..')
_spec = importlib.util.spec_from_file_location(
    'prepare_images_cli', osp.join(ROOT, 'tools', 'prepare_images.py'))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)


def write_dataset(root, names, size=(64, 48)):
    """PNG images ``names`` (a missing one is listed but not written if it ends in '-') and
    two annotation files sharing the data root."""
    (root / 'images').mkdir(parents=True)
    (root / 'annotations').mkdir()
    rng = np.random.default_rng(0)
    entries = []
    for name in names:
        if not name.endswith('-'):
            cv2.imwrite(str(root / 'images' / name),
                        rng.integers(0, 4096, size, dtype=np.uint16))
        entries.append(dict(img_path=f'images/{name}', height=size[0], width=size[1],
                            cls_label=[1]))
    meta = dict(dataset='toy', tasks=['cls'], cls_classes=['x'], converter_version=1)
    for split, part in (('train', entries[:-1]), ('test', entries[-1:])):
        (root / 'annotations' / f'{split}.json').write_text(
            json.dumps(dict(metainfo=meta, data_list=part)))
    return [str(root / 'annotations' / f'{s}.json') for s in ('train', 'test')]


def test_prepares_every_image_with_workers(tmp_path):
    ann_files = write_dataset(tmp_path / 'd', [f'{i}.png' for i in range(6)])
    assert cli.main([*ann_files, '--max-side', '16', '--workers', '2']) == 0
    store = tmp_path / 'd' / 'prepared' / '16'
    report = json.loads((store / 'prepare_report.json').read_text())
    assert (report['images'], report['prepared'], report['skipped']) == (6, 6, {})
    img, meta = read_cxr_image(str(store / 'images' / '5.png'))
    assert img.shape == (16, 12) and meta['original_shape'] == (64, 48)
    # run again: nothing to do
    assert cli.main([*ann_files, '--max-side', '16']) == 0
    assert json.loads((store / 'prepare_report.json').read_text())['reused'] == 6


def test_skipped_images_and_errors_set_the_exit_status(tmp_path):
    ann_files = write_dataset(tmp_path / 'd', ['a.png', 'gone.png-', 'b.png'])
    assert cli.main([*ann_files, '--max-side', '32']) == 1  # one image missing
    report = json.loads((tmp_path / 'd' / 'prepared' / '32' / 'prepare_report.json').read_text())
    assert list(report['skipped']) == ['images/gone.png-']
    # another max side into the same folder: refused, the store is left as it is
    store = str(tmp_path / 'd' / 'prepared' / '32')
    assert cli.main([*ann_files, '--max-side', '16', '--store', store]) == 2
    assert read_cxr_image(osp.join(store, 'images', 'a.png'))[0].shape == (32, 24)


def test_command_line_as_a_user_runs_it(tmp_path):
    ann_files = write_dataset(tmp_path / 'd', ['a.png', 'b.png'])
    log = run_python([osp.join('tools', 'prepare_images.py'), *ann_files, '--max-side', '20'],
                     cwd=ROOT, timeout=120)
    assert '2 prepared, 0 reused, 0 skipped' in log
    assert osp.isfile(tmp_path / 'd' / 'prepared' / '20' / 'index.npy')
