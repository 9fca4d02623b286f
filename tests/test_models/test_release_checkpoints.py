"""The authors' released checkpoints convert exactly: every key, and the same outputs.

The files are random-weight stand-ins with the exact layouts of the released Foundation X and
Ark-6 files (``make_ckpt.py``; fixtures of tests/conftest.py), at full size (Swin-B). They are
converted by the command-line converters into ``configs/foundation_x_release.py`` /
``configs/ark6_release.py``, and fxmm's outputs are compared with an independent reference
forward of the authors' models on the source state dicts (tests/release_reference.py, float64)
on a 224 px image: every classification and segmentation head of both Foundation X copies, the
loc path's backbone maps, and the 6 Ark-6 heads, max |diff| <= 1e-4 (``TOL``). The DINO heads
are compared by tests/test_models/test_detectors/test_release_dino*.py.

``tools/infer.py`` (every head, one image) and ``tools/test.py`` (both copies, one pair per
task on phantom images) run on a converted release at toy size: the release config's modules
and options with small widths, its checkpoint written in the authors' layout by the
converter's rules run backwards, converted by the same command.

Cost (2 shared cores): the Foundation X pair is built once per session (~1.4 GB, ~15 s); the
full-size conversions, forwards and the Ark-6 test take about two minutes.
"""
import json
import os.path as osp
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

import release_reference as ref
from tool_scripts import load_converter
from fxmm.apis import build_in_scope, foundation_x_cfg
from fxmm.testing.cli import run_python
from fxmm.utils.state_dict_mapping import (KeyMapper, load_checkpoint_file, save_converted,
                                           swin_rules)
from fxmm.utils.state_dict_mapping.idea_dino import (DinoLayout, DinoTarget, decoder_prefix,
                                                     dino_rules)

ROOT = osp.join(osp.dirname(__file__), '..', '..')
FX_RELEASE = osp.join(ROOT, 'configs', 'foundation_x_release.py')
ARK6_RELEASE = osp.join(ROOT, 'configs', 'ark6_release.py')
FINETUNE_RELEASE = osp.join(ROOT, 'configs', 'finetune', 'fx-ft_release_jsrt-seg_lock-release.py')
TOL = 1e-4  # max |diff| of every head (the bound)
SIZE = 224


fx_tool = load_converter('foundation_x_to_fxmm')
ark_tool = load_converter('ark_to_fxmm')


def image(seed=0):
    """One normalised 224 px image (1, 3, 224, 224), as the data preprocessor gives them."""
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def max_diff(a, b):
    return float((a.double() - b.double()).abs().max())


def run_cli(tool, monkeypatch, *argv):
    monkeypatch.setattr(sys, 'argv', ['converter', *argv])
    tool.main()


# ----------------------------------------------------------------------------- Foundation X
@pytest.fixture(scope='module')
def fx_release_cfg(released_fx_converted):
    return released_fx_converted[2]


@pytest.fixture(scope='module')
def fx_release_file(released_fx_file, tmp_path_factory):
    """The released file converted by the acceptance command: no --allow-* flag (the
    converter raises on any missing, mismatched or unused key)."""
    dst = str(tmp_path_factory.mktemp('fx_release') / 'fx_release.pth')
    with pytest.MonkeyPatch.context() as patch:
        run_cli(fx_tool, patch, released_fx_file, dst, '--config', FX_RELEASE)
    return dst


@pytest.fixture(scope='module')
def fx_release_pair(fx_release_file, fx_release_cfg):
    """The TeacherStudent of configs/foundation_x_release.py with the converted file loaded
    strictly (every key), and the file's meta."""
    checkpoint = load_checkpoint_file(fx_release_file)
    pair = build_in_scope(dict(type='TeacherStudent', model=fx_release_cfg), 'fxmm')
    pair.load_state_dict(checkpoint['state_dict'], strict=True)
    pair.eval()
    return pair, checkpoint['meta']


def test_released_foundation_x_converts_every_key_without_a_flag(fx_release_pair):
    _, meta = fx_release_pair
    assert meta['missing'] == dict(student=[], teacher=[])
    assert meta['copies'] == 'both'


def test_released_foundation_x_report_names_every_dropped_key(released_fx_converted,
                                                              fx_release_pair):
    report = released_fx_converted[1]['student']
    assert not (report.missing or report.mismatched or report.unused or report.unexpected)
    assert '; 0 missing, 0 shape-mismatched, 0 unused source keys;' in report.summary()
    assert report.filled == len(fx_release_pair[0].student.state_dict())  # every target key
    assert all(report.dropped.values()), 'every dropped key has its reason'
    swin = fx_tool.SWIN
    for i in range(4):
        assert report.dropped[f'{swin}Segnorm{i}.weight'] == fx_tool.SEGNORM
    assert report.dropped[f'{swin}head.weight'] == fx_tool.HEAD
    # the 3 aliases of the smooth conv fill one tensor; the untrained seg heads are built
    assert not any('segmentation_' in key for key in report.dropped)


def test_released_foundation_x_without_the_untrained_seg_heads(released_fx):
    # the converter drops them, naming why
    student, _ = released_fx
    swin = fx_tool.SWIN
    cfg = foundation_x_cfg(Config.fromfile(FX_RELEASE))
    for name in fx_tool.FX_UNTRAINED_SEG_DATASETS:  # as with_untrained_seg_heads = False
        del cfg['datasets'][name]['seg_classes']
        cfg['datasets'][name]['tasks'].remove('seg')
    _, reports = fx_tool.convert(dict(model=student), cfg, 'student')
    dropped = {k for k, why in reports['student'].dropped.items()
               if why == fx_tool.UNTRAINED_SEG_HEAD}
    assert dropped == {f'{swin}segmentation_heads.{k}.{p}' for k in (0, 1, 3)
                       for p in ('weight', 'bias')}


@pytest.mark.parametrize('copy', [0, 1], ids=['student', 'teacher'])
def test_released_foundation_x_cls_seg_heads_match_the_authors_forward(
        copy, released_fx, fx_release_pair):
    pair, _ = fx_release_pair
    source = released_fx[copy]
    model = (pair.student, pair.teacher)[copy]
    x = image(copy)
    with torch.no_grad():
        feats = model.extract_feat(x)
        pooled, seg_feats = model.pooled_features(feats), model.seg_features(feats)
        loc_maps = model.loc_features(feats)[1:]
        stages = ref.swin_stages(source, x.double(), ref.FX_SWIN, shift_small_maps=True)
    diffs = {}
    for k, logits in enumerate(ref.fx_cls_logits(source, stages)):
        name = fx_tool.FX_CLS_DATASETS[k]
        diffs[f'{name}.cls'] = max_diff(model.cls_head(pooled, name), logits)
    for k, logits in enumerate(ref.fx_seg_logits(source, stages, (SIZE, SIZE))):
        name = fx_tool.FX_SEG_DATASETS[k]
        diffs[f'{name}.seg'] = max_diff(model.seg_head(seg_feats, name, (SIZE, SIZE)), logits)
        assert logits.std() > 0
    for i, (ours, theirs) in enumerate(zip(loc_maps, ref.fx_loc_maps(source, stages))):
        diffs[f'loc stage {i + 2}'] = max_diff(ours, theirs)
    print(f'\n{("student", "teacher")[copy]} max |diff|: {diffs}')
    assert len(diffs) == 11 + 6 + 3
    assert max(diffs.values()) <= TOL, diffs


def test_a_finetune_config_starts_from_the_converted_release_with_load_from(
        released_fx_converted, tmp_path):
    cfg = Config.fromfile(FINETUNE_RELEASE)
    converted = {k[len('teacher.'):]: v for k, v in released_fx_converted[0].items()
                 if k.startswith('teacher.')}  # the teacher as a FoundationX state dict
    save_converted(converted, str(tmp_path / 'teacher.pth'), meta=dict())
    model = build_in_scope(cfg.model, 'fxmm')
    # what the runner does with load_from
    load_checkpoint(model, str(tmp_path / 'teacher.pth'), map_location='cpu', strict=False)
    loaded = model.state_dict()
    fresh = {k for k in loaded if k not in converted}
    assert fresh and all(k.startswith('seg_head.heads.jsrt.') for k in fresh)
    assert all(torch.equal(v, converted[k]) for k, v in loaded.items() if k not in fresh)
    assert any(k.startswith('backbone.task_norms.') for k in loaded)
    assert any(k.startswith('seg_neck.psp.') for k in loaded)


# ------------------------------------------------------------------------------------ Ark-6
def test_released_ark6_converts_every_key_and_matches_the_authors_forward(
        released_ark6, tmp_path, monkeypatch):
    src, dst = str(tmp_path / 'ark6.pth.tar'), str(tmp_path / 'ark6_fxmm.pth')
    torch.save(released_ark6, src)
    run_cli(ark_tool, monkeypatch, src, dst, '--config', ARK6_RELEASE)  # no --allow-* flag
    checkpoint = load_checkpoint_file(dst)
    assert checkpoint['meta']['missing'] == {'<top level>': []}
    model = build_in_scope(foundation_x_cfg(Config.fromfile(ARK6_RELEASE)), 'fxmm')
    model.load_state_dict(checkpoint['state_dict'], strict=True)
    model.eval()
    x = image(2)
    with torch.no_grad():
        outs = model(x, mode='tensor')
        logits = ref.ark_logits(released_ark6, x.double())
    diffs = {f'{name}.cls': max_diff(outs[f'{name}.cls'], theirs)
             for name, theirs in zip(ark_tool.ARK6_DATASETS, logits)}
    print(f'\nArk-6 max |diff|: {diffs}')
    assert len(diffs) == 6 and max(diffs.values()) <= TOL, diffs


# ------------------------------------------------------------- tools/infer.py, tools/test.py
def tiny_release_cfg():
    """configs/foundation_x_release.py at toy size: the same datasets, modules and options
    (per-task norms, PSPFPNNeck, 3x3 heads, the release DINO options), small widths."""
    cfg = Config.fromfile(FX_RELEASE)
    model = cfg.model.model
    model.backbone.update(arch=dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4]))
    channels = [16, 32, 64, 128]
    model.cls_head.in_channels = channels[-1]
    model.seg_neck.update(in_channels=channels, channels=channels[0])
    model.seg_head.in_channels = channels[0]
    model.loc_head.update(in_channels=channels[1:], num_queries=30,
                          test_cfg=dict(max_per_img=10))
    model.loc_head.encoder.update(num_layers=1)
    model.loc_head.decoder.update(num_layers=2)
    model.loc_head.dn_cfg.group_cfg.num_dn_queries = 10
    for part in (model.loc_head.encoder, model.loc_head.decoder):
        part.layer_cfg.ffn_cfg.feedforward_channels = 64
    return cfg


def authors_layout(model, seed):
    """A FoundationX of the released architecture, randomised, written in the authors' key
    layout by the converter's rules run backwards (the smooth conv under its three names; the
    decoders' shared query and label embeddings one tensor, as in their model)."""
    gen = torch.Generator().manual_seed(seed)
    fxmm = {k: (torch.randn(v.shape, generator=gen) * 0.1 + ('norm' in k and k.endswith('weight'))
                if v.is_floating_point() and 'running_var' not in k else v)
            for k, v in model.state_dict().items()}
    first = f'loc_head.branches.{fx_tool.FX_LOC_DATASETS[0]}.'
    for key in list(fxmm):
        for shared in ('query_embedding.', 'dn_query_generator.'):
            if key.startswith('loc_head.branches.') and f'.{shared}' in key:
                fxmm[key] = fxmm[first + shared + key.split(f'.{shared}')[1]]
    layout = DinoLayout([decoder_prefix(k) for k in range(len(fx_tool.FX_LOC_DATASETS))],
                        num_layers=2, num_levels=4, output_heads=True, memory_proj=True,
                        per_decoder_memory_trans=True)
    loc_classes = {name: model.loc_head.branches[name].num_classes
                   for name in fx_tool.FX_LOC_DATASETS}
    rules = (swin_rules(fx_tool.SWIN, 'backbone.')
             + fx_tool.target_rules(model, fx_tool.FX_CLS_DATASETS, fx_tool.FX_SEG_DATASETS,
                                    'norm')
             + dino_rules(layout, loc_classes, 3, DinoTarget.of(model.loc_head)))
    smooth = fx_tool.SWIN + 'segmentation_FPN.smooth_conv.'
    rules = [r for r in rules if r.dst is not None and not r.src.startswith(smooth)]
    sd = dict(KeyMapper(rules).inverse().convert(fxmm).state_dict)
    for i in range(3):
        for p in ('weight', 'bias'):
            sd[f'{smooth}{i}.{p}'] = fxmm[f'seg_neck.smooth_conv.{p}']
    return sd


@pytest.fixture(scope='module')
def tiny_release(tmp_path_factory):
    """The tiny release config, its authors'-layout checkpoint (two copies) converted by the
    acceptance command (no flag), and the folder."""
    folder = tmp_path_factory.mktemp('tiny_release')
    cfg = tiny_release_cfg()
    config = str(folder / 'tiny_release.py')
    cfg.dump(config)
    model = build_in_scope(foundation_x_cfg(cfg), 'fxmm')
    src, dst = str(folder / 'FX_tiny.pth'), str(folder / 'fx_tiny_release.pth')
    torch.save(dict(model=authors_layout(model, 0), teacher_model=authors_layout(model, 1)), src)
    with pytest.MonkeyPatch.context() as patch:
        run_cli(fx_tool, patch, src, dst, '--config', config)
    return folder, config, dst


def test_infer_runs_every_head_of_a_converted_release(tiny_release):
    folder, config, checkpoint = tiny_release
    image_path = str(folder / 'cxr.png')
    cv2.imwrite(image_path, np.random.default_rng(0).integers(0, 256, (300, 260), np.uint8))
    out = str(folder / 'infer')
    run_python([osp.join(ROOT, 'tools', 'infer.py'), image_path, '--config', config,
                '--weights', checkpoint, '--out-dir', out, '--device', 'cpu',
                '--score-thr', '0'], ROOT)
    with open(osp.join(out, 'predictions.json')) as f:
        result, = json.load(f)['predictions']
    tasks = {name: sorted(preds) for name, preds in result['datasets'].items()}
    assert {name for name, t in tasks.items() if 'cls' in t} == set(fx_tool.FX_CLS_DATASETS)
    assert {name for name, t in tasks.items() if 'loc' in t} == set(fx_tool.FX_LOC_DATASETS)
    assert {name for name, t in tasks.items() if 'seg' in t} == set(fx_tool.FX_SEG_DATASETS)
    assert len(result['datasets']['tbx11k']['cls']) == 1  # the release's TB head
    assert all(result['datasets'][name]['loc'] for name in fx_tool.FX_LOC_DATASETS)


# one pair per task, on phantom pneumothorax images annotated as these release datasets
RELEASE_TEST_PAIRS = (('siim_data', 'cls'), ('node21_data', 'loc'), ('candid_ptx_data', 'seg'))


def release_test_config(config, folder):
    """``config`` testing RELEASE_TEST_PAIRS on phantoms written under ``folder`` in those
    datasets' folders, annotation files and class lists."""
    from data_converters.synthetic import generate_phantom_datasets
    phantoms = folder / 'phantoms'
    generate_phantom_datasets(str(phantoms), num_train=1, num_val=1, num_test=2, size=96,
                              datasets=['phantom_ptx'])
    cfg = Config.fromfile(config)
    with open(phantoms / 'phantom_ptx' / 'annotations' / 'test.json') as f:
        phantom = json.load(f)
    pairs = []
    for var, task in RELEASE_TEST_PAIRS:
        data = cfg[var]
        root = folder / 'cxr' / data['folder']
        shutil.copytree(phantoms / 'phantom_ptx' / 'images', root / 'images')
        meta = dict(phantom['metainfo'], dataset=data['name'], tasks=data['tasks'],
                    **{key: data[key] for key in ('cls_classes', 'det_classes', 'seg_classes')})
        entries = [dict(entry, seg={data['seg_classes'][0]: rle for rle in entry['seg'].values()}
                        if data['seg_classes'] else {}) for entry in phantom['data_list']]
        ann_file = root / data['ann_file']['test']
        ann_file.parent.mkdir(parents=True)
        ann_file.write_text(json.dumps(dict(metainfo=meta, data_list=entries)))
        pair, = [p for p in cfg.test_dataloader.dataset.pairs
                 if p.task == task and p.dataset.data_root.endswith(data['folder'])]
        pairs.append(dict(pair, dataset=dict(pair.dataset, data_root=str(root) + '/')))
    cfg.test_dataloader.dataset.pairs = pairs
    cfg.test_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.test_dataloader.sampler.batch_size = 2
    path = str(folder / 'release_test.py')
    cfg.dump(path)
    return path


def test_test_evaluates_both_copies_of_a_converted_release(tiny_release):
    folder, config, checkpoint = tiny_release
    config = release_test_config(config, folder)
    run_python([osp.join(ROOT, 'tools', 'test.py'), config, checkpoint, '--work-dir',
                str(folder / 'test')], ROOT)
    results = json.loads((folder / 'test' / 'test_results' / 'results.json').read_text())
    flat = json.dumps(results)
    for metric in ('siim.cls/AUC', 'node21.loc/mAP40', 'candid_ptx.seg/Dice'):
        assert metric in flat, metric
    table = (folder / 'test' / 'test_results' / 'results.md').read_text()
    assert '### student' in table and '### teacher' in table
