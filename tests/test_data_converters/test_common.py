"""The shared run: no overwrite without --overwrite, resume after a kill (and what a
SIGTERM says), --to-png, --workers, the progress bar, tasks without labels, the command line
and convert_all."""
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys

import cv2
import numpy as np
import pytest

from data_converters.convert_all import convert_all
from data_converters.shenzhen import ShenzhenConverter
from data_converters.siim_acr import SIIMACRConverter
from fixtures import converted, ramp, report_of, write_montgomery, write_shenzhen, write_siim

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def annotations(root):
    """{file name: parsed JSON} of a conversion's annotation files."""
    folder = osp.join(root, 'annotations')
    return {name: json.load(open(osp.join(folder, name))) for name in sorted(os.listdir(folder))
            if name.endswith('.json') and name != 'conversion_report.json'}


class Interrupted(SIIMACRConverter):
    """Killed (KeyboardInterrupt) while annotating its third image."""

    def annotate(self, record, img):
        self.done = getattr(self, 'done', 0) + 1
        if self.done == 3:
            raise KeyboardInterrupt
        return super().annotate(record, img)


class Counting(SIIMACRConverter):
    """Records which images it annotated."""
    keys = []

    def annotate(self, record, img):
        Counting.keys.append(record['key'])
        return super().annotate(record, img)


def test_refuses_to_overwrite_and_resumes_after_a_kill(tmp_path):
    root = str(tmp_path / 'siim')
    write_siim(root)
    SIIMACRConverter(root=root).run()
    clean = annotations(root)
    with pytest.raises(FileExistsError, match='train.json already exists: pass --overwrite'):
        SIIMACRConverter(root=root).run()
    assert SIIMACRConverter.main(['--root', root]) == 2  # the CLI says so, no traceback

    with pytest.raises(KeyboardInterrupt):
        Interrupted(root=root, overwrite=True).run()
    cache = osp.join(root, 'annotations', '.partial', 'results.jsonl')
    with open(cache) as f:
        assert len(f.readlines()) == 2
    with open(cache, 'a') as f:
        f.write('{"key": "img.edge", "fingerpr')  # a line torn by the kill
    with pytest.raises(FileExistsError, match='other options'):
        SIIMACRConverter(root=root, to_png=True).run()

    report = Counting(root=root).run()  # no --overwrite needed to resume
    assert report.counts['images reused from the interrupted run'] == 2
    # img.two and img.neg were done; failures are not cached but tried again
    assert sorted(Counting.keys) == ['img.edge', 'img.overrun']
    assert annotations(root) == clean
    assert not osp.exists(osp.join(root, 'annotations', '.partial'))


def test_to_png_and_workers_give_the_same_annotations(tmp_path):
    roots = [str(tmp_path / f'siim{i}') for i in range(2)]
    for root in roots:
        write_siim(root)
    SIIMACRConverter(root=roots[0], workers=1).run()
    SIIMACRConverter(root=roots[1], workers=2).run()
    assert annotations(roots[0]) == annotations(roots[1])

    out = str(tmp_path / 'png_out')
    SIIMACRConverter(root=roots[0], out=out, to_png=True).run()
    entries = converted(out)
    assert set(entries) == {'img.two', 'img.neg', 'img.edge'}
    for i, stem in enumerate(['img.two', 'img.neg', 'img.edge']):
        path = entries[stem]['img_path']
        assert path.startswith('png/dicom-images-train/')
        png = cv2.imread(osp.join(out, path), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16  # 12-bit DICOM -> 16-bit PNG, values unchanged
        np.testing.assert_array_equal(png, ramp(24, 32, [0, 1, 2][i]))
    assert entries['img.two']['pixel_spacing'] == [0.2, 0.2]  # kept from the DICOM

    root = str(tmp_path / 'ChinaSet_AllFiles')
    write_shenzhen(root)
    ShenzhenConverter(root=root, to_png=True).run()
    png = cv2.imread(osp.join(root, 'png', 'CXR_png', 'CHNCXR_0002_1.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(png, ramp(20, 24, 1, 255).astype(np.uint8))  # 8-bit stays
    # a second run does not index its own PNG copies
    ShenzhenConverter(root=root, to_png=True, overwrite=True).run()
    assert report_of(root)['counts'] == {}


def test_convert_all_script(tmp_path):
    datasets = tmp_path / 'cxr'
    write_shenzhen(str(datasets / 'ChinaSet_AllFiles'))
    write_montgomery(str(datasets / 'MontgomerySet'))
    os.makedirs(datasets / 'TBX11K')  # present but empty: fails, the others still run
    cmd = [sys.executable, osp.join(REPO, 'data_converters', 'convert_all.py'),
           '--datasets', str(datasets), '--workers', '2']
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path))
    assert result.returncode == 1, result.stderr  # TBX11K failed
    assert 'failed: TBX11K COCO annotations' in result.stdout + result.stderr
    assert converted(str(datasets / 'ChinaSet_AllFiles'))
    assert converted(str(datasets / 'MontgomerySet'))
    outcome = convert_all(str(datasets), only=['shenzhen', 'montgomery', 'jsrt'])
    assert outcome['jsrt'] == 'not found'
    assert outcome['shenzhen'].startswith('already converted')


def test_convert_all_goes_on_after_an_unexpected_error(tmp_path, monkeypatch):
    """A bug-like error (not bad input) in one converter is reported with its type, and the
    other datasets are still converted."""
    from data_converters import convert_all as module

    class Broken(ShenzhenConverter):
        def collect(self, report):
            raise KeyError('image_id')

    datasets = tmp_path / 'cxr'
    write_shenzhen(str(datasets / 'ChinaSet_AllFiles'))
    write_montgomery(str(datasets / 'MontgomerySet'))
    folders, _ = module.DATASETS['shenzhen']
    monkeypatch.setitem(module.DATASETS, 'shenzhen', (folders, Broken))
    outcome = convert_all(str(datasets), only=['shenzhen', 'montgomery'])
    assert outcome['shenzhen'] == "failed: KeyError: 'image_id'"
    assert outcome['montgomery'].startswith('converted')
    assert converted(str(datasets / 'MontgomerySet'))


class Terminated(SIIMACRConverter):
    """Sent SIGTERM (as a scheduler or ``kill`` stops a job) while annotating its third
    image."""

    def annotate(self, record, img):
        self.done = getattr(self, 'done', 0) + 1
        if self.done == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().annotate(record, img)


def test_sigterm_says_how_to_resume(tmp_path, monkeypatch):
    from data_converters import common
    logged = []
    monkeypatch.setattr(common, 'print_log', lambda msg, **kwargs: logged.append(msg))
    root = str(tmp_path / 'siim')
    write_siim(root)
    with pytest.raises(SystemExit) as stop:
        Terminated.main(['--root', root])
    assert stop.value.code == 128 + signal.SIGTERM
    partial = osp.join(root, 'annotations', '.partial')
    assert logged[-1] == (f'stopped by SIGTERM: siim: the images finished so far are kept in '
                          f'{partial}; run the same command again to resume the conversion '
                          'where it stopped')
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored
    assert SIIMACRConverter.main(['--root', root]) == 0  # the same command resumes
    assert report_of(root)['counts']['images reused from the interrupted run'] == 2


def test_progress_bar_line_is_ended(tmp_path, capsys):
    """The summary logged after the bar starts a line of its own."""
    root = str(tmp_path / 'ChinaSet_AllFiles')
    write_shenzhen(root)
    ShenzhenConverter(root=root).run()
    out = capsys.readouterr().out
    assert re.search(r'ETA: +0s\n', out), out[-200:]


class Unlabelled(SIIMACRConverter):
    """A layout without image labels: every cls label null."""

    def annotate(self, record, img):
        return dict(super().annotate(record, img), cls_label=[None])


def test_a_task_without_labels_is_not_listed(tmp_path):
    root = str(tmp_path / 'siim')
    write_siim(root)
    report = Unlabelled(root=root).run()
    for name, ann in annotations(root).items():
        assert ann['metainfo']['tasks'] == ['loc', 'seg'], name
        assert ann['metainfo']['cls_classes'] == []
        assert all(entry['cls_label'] == [] for entry in ann['data_list'])
    assert report.notes == ["cls: no image has a label of any of its 1 classes, so 'cls' is "
                            'left out of metainfo.tasks']
    assert converted(root)  # the files are valid annotations
