"""Tests of tools/benchmark.py and tools/benchmarks/ at tiny sizes (64 px, batch 2, 1-2 rounds).

They check what the benchmark reports, never how fast anything is: the speed targets belong
in the benchmark's output. The CLI runs once as a user runs it (``all``); the subcommands run
in-process.
"""
import importlib.util
import json
import math
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from fxmm.testing import run_python
from tools.benchmarks import models, timing
from tools.benchmarks.scaling import replicated_datasets
from tools.benchmarks.step import LockPhase

ROOT = osp.join(osp.dirname(__file__), '..', '..')
CONFIG = osp.join(ROOT, 'configs', 'foundation_x_demo.py')
TINY = ['--config', CONFIG, '--size', '64', '--batch-size', '2', '--repeats', '1', '--warmup',
        '0', '--infer-batch-sizes', '1', '2', '--scaling-sizes', '64', '96',
        '--scaling-datasets', '1', '2', '3', '--dicom-files', '3', '--dicom-size', '64',
        '--data-iters', '2', '--threads', '1', '--real-files', '1', '--real-inputs', 'jpeg_390',
        'png8_512', '--share-batches', '0', '--real-config', CONFIG]
TASKS = ('cls', 'loc', 'seg')
# Linux measures a call's peak RSS (VmHWM reset through /proc/self/clear_refs); elsewhere the
# benchmark reports None
MEASURES_PEAK_RSS = sys.platform == 'linux' and os.access('/proc/self/clear_refs', os.W_OK)

_spec = importlib.util.spec_from_file_location('benchmark_cli',
                                               osp.join(ROOT, 'tools', 'benchmark.py'))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)



def finite_positive(value):
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.fixture(scope='module')
def all_report(tmp_path_factory):
    """``tools/benchmark.py all`` run as a command, tiny; its JSON and output folder."""
    out = tmp_path_factory.mktemp('benchmark')
    log = run_python([osp.join('tools', 'benchmark.py'), 'all', *TINY, '--out-dir', str(out)],
                     cwd=ROOT, timeout=300)
    assert 'wrote' in log
    with open(out / 'benchmark.json') as f:
        return json.load(f), out


def test_all_writes_json_markdown_and_png_with_every_section(all_report):
    report, out = all_report
    assert {'step', 'infer', 'data', 'scaling', 'machine', 'command'} <= set(report)
    assert (out / 'benchmark_scaling.png').stat().st_size > 1000
    markdown = (out / 'benchmark.md').read_text()
    for title in ('## 1. Training step', '## 2. Inference', '## 3. Data pipeline',
                  '## 4. Scaling', 'benchmark_scaling.png'):
        assert title in markdown
    # every target has a row saying met or not met
    rows = [line for line in markdown.splitlines() if line.endswith('met** |')]
    assert len(rows) >= 12 + 2 + 2


def test_step_ratios_and_the_locked_step_does_no_work_on_the_frozen_part(all_report):
    step = all_report[0]['step']
    assert step['settings']['size'] == 64 and step['settings']['batch_size'] == 2
    assert set(step['tasks']) == set(TASKS)
    for task, result in step['tasks'].items():
        assert set(result['times']) == {'reference', 'fx', 'fx_locked', 'fx_teacher',
                                        'fx_teacher_locked'}
        assert all(finite_positive(t['median']) for t in result['times'].values())
        for ratio in result['ratios'].values():
            assert finite_positive(ratio['median']) and isinstance(ratio['met'], bool)
        for check in result['locked_check'].values():
            assert check['num_locked_params'] > 0
            assert check['grad_none_after_backward'] and check['unchanged_after_step']
            assert check['released_grads'] > 0  # the control: released, they train
        # CPU peak memory: RSS based, measured on Linux
        for memory in result['peak_memory_mib'].values():
            assert memory >= 0 if MEASURES_PEAK_RSS else memory is None


def test_infer_data_and_scaling_sections(all_report):
    report = all_report[0]
    infer = report['infer']
    assert list(infer['batch_sizes']) == ['1', '2']
    assert infer['heads']['loc'] == ['phantom_loc', 'phantom_ptx']
    for result in infer['batch_sizes'].values():
        assert set(result['times']) == {'fx', 'fx_same_heads', 'reference_cls',
                                         'reference_loc', 'reference_seg'}
        assert finite_positive(result['ratio']['median'])
        assert finite_positive(result['ratio_same_heads']['median'])
        assert all(finite_positive(v) for v in result['images_per_s'].values())
    pipeline, share = report['data']['pipeline'], report['data']['data_share']
    assert pipeline['files'] == 3 and finite_positive(pipeline['ratio']['median'])
    assert set(pipeline['files_per_s']) == {'pipeline', 'load_only', 'pydicom'}
    assert 0 < share['share']['value'] < 1 and share['num_workers'] == 2
    assert len(share['pairs']) == 2
    real = report['data']['real_size']
    assert list(real['inputs']) == ['jpeg_390', 'png8_512'] and real['settings']['img_size'] == 128
    for name, result in real['inputs'].items():
        # both are stored whole (long side <= 512): the store gives the very same outputs
        assert list(result['difference']) == ['store']  # no reduced decoding below 1024 px
        for diff in result['difference']['store'].values():
            assert diff['image_max'] == 0 and diff.get('mask_pixels_differing', 0) == 0
        for task in ('cls', 'loc', 'seg'):
            assert all(finite_positive(v) for v in result['tasks'][task]['cores_per_gpu'].values())
    assert real['inputs']['jpeg_390']['stored_shape'] == [390, 320]
    assert set(real['formats']['png8_512']) == {'raw (store)', 'png', 'webp lossless'}
    scaling = report['scaling']
    assert list(scaling['sizes']) == ['64', '96'] and list(scaling['datasets']) == ['1', '2', '3']
    decoders = [scaling['datasets'][n]['param_mib']['loc_decoders (per dataset)']
                for n in ('1', '2', '3')]
    # one identical decoder per dataset: exactly linear, nothing fixed
    assert decoders[1] == pytest.approx(2 * decoders[0]) and decoders[2] == pytest.approx(
        3 * decoders[0])
    fit = scaling['fits']['loc_decoders (per dataset)']
    assert fit['r2'] == pytest.approx(1.) and fit['slope'] == pytest.approx(decoders[0])
    assert scaling['fits']['backbone (shared)']['slope'] == pytest.approx(0., abs=1e-9)


@pytest.mark.parametrize('command', ['step', 'infer', 'data', 'scaling'])
def test_each_subcommand_writes_its_own_report(command, tmp_path):
    extra = {'step': ['--no-profile'], 'infer': ['--no-profile', '--infer-batch-sizes', '1'],
             'data': [], 'scaling': ['--scaling-sizes', '64', '--scaling-datasets', '1', '2']}
    paths = cli.main([command, *TINY, *extra[command], '--out-dir', str(tmp_path)])
    assert paths['json'] == str(tmp_path / f'{command}.json')
    with open(paths['json']) as f:
        report = json.load(f)
    assert set(report) == {command, 'machine', 'command'}
    assert osp.isfile(paths['md'])
    assert ('png' in paths) == (command == 'scaling')


def test_lock_phase_uses_the_hook_and_released_restores():
    cfg = Config.fromfile(CONFIG)
    student_cfg = models.student_config(cfg, 64)
    model = models.build_fx(student_cfg, 'cpu')
    phase = LockPhase(model, models.build_optimizer(model, cfg))
    backbone = list(model.backbone.parameters())
    phase.set('phantom_seg', 'seg', locked=True)
    assert not any(p.requires_grad for p in backbone)
    assert not any(p.requires_grad for p in model.seg_neck.parameters())
    assert all(p.requires_grad for p in model.seg_head.parameters())
    phase.set('phantom_seg', 'seg', locked=False)
    assert all(p.requires_grad for p in backbone)


def test_references_are_the_plain_openmmlab_models_with_the_same_backbone():
    cfg = Config.fromfile(CONFIG)
    student_cfg = models.student_config(cfg, 64)
    fx = models.build_fx(student_cfg, 'cpu')
    kinds = {'cls': 'ImageClassifier', 'loc': 'DINO', 'seg': 'EncoderDecoder'}
    for task, kind in kinds.items():
        ref = models.build_reference(fx, student_cfg, task, models.task_dataset(fx, task), 'cpu')
        assert type(ref).__name__ == kind
        assert type(ref.backbone) is type(fx.backbone)
        assert ref.backbone.embed_dims == fx.backbone.embed_dims


def test_replicated_datasets_give_every_dataset_every_task():
    cfg = Config.fromfile(CONFIG)
    datasets = replicated_datasets(cfg, 3)
    assert list(datasets) == ['dataset00', 'dataset01', 'dataset02']
    assert datasets['dataset02'] == dict(cls_classes=['nodule', 'mass', 'consolidation',
                                                      'effusion', 'pneumothorax'],
                                         det_classes=['nodule', 'mass'],
                                         seg_classes=['right_lung', 'left_lung', 'heart'])


def test_timing_helpers():
    stats = timing.summarize([4., 1., 3., 2.])
    assert stats['median'] == 2.5 and stats['q1'] == 1.75 and stats['q3'] == 3.25
    assert timing.summarize([2.])['iqr'] == 0
    ratio = timing.paired_ratio([2., 6.], [[1., 1.], [1., 2.]])
    assert ratio['median'] == pytest.approx(1.5)  # per round: 2/2, 6/3
    order = []
    times = timing.interleaved({n: (lambda n=n: order.append(n)) for n in 'abc'}, repeats=2,
                               warmup=1)
    assert order == list('abcbcacab') and all(len(t) == 2 for t in times.values())
    big = timing.peak_memory(lambda: torch.ones(64, 2**20).sum(), 'cpu')  # 256 MiB
    if MEASURES_PEAK_RSS:
        assert 200 < big < 400
    else:
        assert big is None


def test_data_share_is_skipped_with_the_reason_when_real_data_is_missing():
    from tools.benchmarks.data import data_benchmark
    cfg = Config.fromfile(CONFIG)
    cfg.train_dataloader.dataset.pairs[0].dataset.data_root = 'nowhere/CheXpert-v1.0-small'
    result = data_benchmark(cfg, num_files=2, dicom_size=64, repeats=1, iters=1)
    assert 'CheXpert-v1.0-small' in result['data_share']['skipped']
    assert result['pipeline']['files'] == 2


def test_real_size_benchmark_reduces_stores_and_measures_the_share(tmp_path):
    """Two small inputs large enough to be reduced (long side 1100 / 600 at a 256 store)."""
    from tools.benchmarks.real_inputs import RealInput
    from tools.benchmarks.real_size import real_size_benchmark
    inputs = [RealInput('jpeg_1100', 'MIMIC-like', 'jpeg', 1100, 900, 8),
              RealInput('png16_600', '--to-png like', 'png', 600, 600, 12)]
    cfg = Config.fromfile(CONFIG)
    res = real_size_benchmark(str(tmp_path), cfg, num_files=1, repeats=1, max_side=256,
                              share_batches=1, inputs=inputs, share_inputs=['png16_600'],
                              gpu_samples_per_s=200.)
    jpeg, png = res['inputs']['jpeg_1100'], res['inputs']['png16_600']
    assert jpeg['stored_shape'] == [256, 209] and png['stored_shape'] == [256, 256]
    assert list(jpeg['difference']) == ['reduced', 'store'] and list(png['difference']) == [
        'store']
    for result in (jpeg, png):
        for variant, by_pipeline in result['difference'].items():
            for diff in by_pipeline.values():
                # the same image up to resampling; boxes within a pixel of the 128 px input
                assert 0 < diff['image_max'] < 0.2 and diff['image_mean'] < 0.02
                assert diff.get('boxes_max_px', 0) < 1
                assert diff.get('mask_pixels_differing', 0) < 0.02
        cls = result['tasks']['cls']
        assert cls['cores_per_gpu']['store'] == pytest.approx(200 * cls['ms']['store'] / 1e3)
    share = res['share']['png16_600']
    assert set(share) == {'store', 'original'} and 0 <= share['store']['share'] < 1
    assert share['store']['loader_samples_per_s'] > 0
    assert share['store']['num_workers'] == cfg.train_dataloader.num_workers
    assert set(res['targets']) == {'store_speedup', 'no_slower', 'cores_per_gpu', 'share'}
    assert res['targets']['store_speedup']['values'] == {}  # the inputs are not here
