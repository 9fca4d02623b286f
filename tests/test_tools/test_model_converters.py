"""Tests of tools/model_converters/ and fxmm.utils.state_dict_mapping (CPU, tiny models).

Source checkpoints are built in the source layouts' key names and shapes: timm's Swin (Ark) from
random tensors, the authors' Foundation X layout (timm Swin under ``backbone.0.``, their norms
and heads, IDEA DINO keys). A functional re-implementation of timm's Swin forward (below, from
timm's published layout) is the source-layout model whose outputs the converted fxmm models must
reproduce. Exports are loaded strictly into mmpretrain / mmdet / mmseg models built from the
written configs and must give fxmm's outputs.
"""
import argparse
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmseg.structures import SegDataSample

import release_reference as authors
from tool_scripts import load_converter

from fxmm.apis import build_in_scope, fxmm_state_dict, load_fxmm_model
from fxmm.models.teacher_student import join_copies
from fxmm.structures.cxr_data_sample import CXRDataSample
from fxmm.testing import get_tiny_model_cfg
from fxmm.utils.state_dict_mapping import idea_dino
from fxmm.utils.state_dict_mapping import (ConversionError, KeyMapper, KeyRule,
                                           load_checkpoint_file, merge_norm_timm_to_unfold,
                                           merge_weight_timm_to_unfold, mmpretrain_swin_to_timm,
                                           save_converted, select_state_dict,
                                           timm_swin_to_mmpretrain)

timm_tool = load_converter('timm_swin_to_mmpretrain')
ark_tool = load_converter('ark_to_fxmm')
fx_tool = load_converter('foundation_x_to_fxmm')
pretrain_tool = load_converter('fxmm_to_mmpretrain')
mmdet_tool = load_converter('fxmm_to_mmdet')
mmseg_tool = load_converter('fxmm_to_mmseg')

EMBED, DEPTHS, HEADS, WINDOW = 16, (2, 2, 2, 2), (1, 2, 2, 4), 4
CHANNELS = [EMBED * 2**i for i in range(4)]  # 16, 32, 64, 128
SIZE = 128  # stage maps 32, 16, 8, 4: stage 4 equals the window (the shift corner case)



# ---------------------------------------------------------------- timm Swin, source layout
def timm_swin_state_dict(gen, prefix=''):
    """Random tensors under timm <= 0.6 Swin keys (incl. timm's relative_position_index)."""

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    sd = OrderedDict()
    sd[prefix + 'patch_embed.proj.weight'] = r(EMBED, 3, 4, 4)
    sd[prefix + 'patch_embed.proj.bias'] = r(EMBED)
    sd[prefix + 'patch_embed.norm.weight'] = 1 + r(EMBED)
    sd[prefix + 'patch_embed.norm.bias'] = r(EMBED)
    for i, (depth, heads, dim) in enumerate(zip(DEPTHS, HEADS, CHANNELS)):
        for j in range(depth):
            p = f'{prefix}layers.{i}.blocks.{j}.'
            for norm in ('norm1', 'norm2'):
                sd[f'{p}{norm}.weight'], sd[f'{p}{norm}.bias'] = 1 + r(dim), r(dim)
            sd[p + 'attn.relative_position_bias_table'] = r((2 * WINDOW - 1)**2, heads, scale=1.)
            sd[p + 'attn.relative_position_index'] = authors.relative_position_index(WINDOW)
            sd[p + 'attn.qkv.weight'], sd[p + 'attn.qkv.bias'] = r(3 * dim, dim), r(3 * dim)
            sd[p + 'attn.proj.weight'], sd[p + 'attn.proj.bias'] = r(dim, dim), r(dim)
            sd[p + 'mlp.fc1.weight'], sd[p + 'mlp.fc1.bias'] = r(4 * dim, dim), r(4 * dim)
            sd[p + 'mlp.fc2.weight'], sd[p + 'mlp.fc2.bias'] = r(dim, 4 * dim), r(dim)
            if j % 2:
                sd[p + 'attn_mask'] = torch.zeros(4, WINDOW**2, WINDOW**2)
        if i < len(DEPTHS) - 1:
            p = f'{prefix}layers.{i}.downsample.'
            sd[p + 'reduction.weight'] = r(2 * dim, 4 * dim)
            sd[p + 'norm.weight'], sd[p + 'norm.bias'] = 1 + r(4 * dim), r(4 * dim)
    return sd


def timm_swin_last_stage(sd, x, shift_small_maps, prefix=''):
    """The un-normalised last-stage tokens (B, H*W, C) of a timm-layout Swin state dict
    (the reference forward of tests/release_reference.py: ``shift_small_maps=False`` is timm's
    classification Swin, True the detection Swin the Foundation X authors use)."""
    last = authors.swin_stages(sd, x, prefix, shift_small_maps)[-1]
    return last.flatten(2).transpose(1, 2)


def mmpretrain_swin(pad_small_map, out_indices=(3, )):
    model = build_in_scope(dict(
        type='SwinTransformer', arch=dict(embed_dims=EMBED, depths=list(DEPTHS),
                                          num_heads=list(HEADS)),
        window_size=WINDOW, out_indices=out_indices, pad_small_map=pad_small_map), 'mmpretrain')
    model.eval()
    return model


def images(seed=0, size=SIZE, batch=2):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- key templates, helpers
def test_key_rules_rename_fan_out_drop_and_invert():
    rules = [KeyRule('a.{i}.w', 'b.{i}.weight', lambda v: v * 2, lambda v: v / 2),
             KeyRule('shared.{p}', 'x.{p}'), KeyRule('shared.{p}', 'y.{p}'),
             KeyRule('a.{rest*}', None, why='not needed'), KeyRule('c.{rest*}', 'd.{rest*}')]
    sd = {'a.0.w': torch.ones(2), 'shared.w': torch.zeros(1), 'c.1.2.w': torch.ones(1),
          'e': torch.ones(1)}
    # 'a.{rest*}' would drop a.0.w: dropping rules win, so a.0.w must not be written
    mapped = KeyMapper(rules).convert(sd)
    assert mapped.dropped == {'a.0.w': 'not needed'}
    assert set(mapped.state_dict) == {'x.w', 'y.w', 'd.1.2.w'}
    assert mapped.unused == ['e']
    mapped = KeyMapper(rules[:3]).convert({'a.0.w': torch.ones(2), 'shared.w': torch.zeros(1)})
    assert torch.equal(mapped.state_dict['b.0.weight'], torch.full((2, ), 2.))
    back = KeyMapper(rules[:3]).inverse().convert(mapped.state_dict).state_dict
    assert torch.equal(back['a.0.w'], torch.ones(2)) and torch.equal(back['shared.w'],
                                                                      torch.zeros(1))
    # two sources writing one target must agree
    with pytest.raises(ConversionError, match="'x.w' and 'y.w' both map to 'shared.w'"):
        KeyMapper(rules[1:3]).inverse().convert({'x.w': torch.zeros(1), 'y.w': torch.ones(1)})


def test_checkpoint_reading_refuses_pickled_objects_and_strips_module(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'teacher': {'module.w': torch.ones(1)}, 'args': argparse.Namespace(lr=1.),
                'meta': {'epoch': 3}}, path)
    with pytest.raises(ConversionError, match='pass --trusted'):
        load_checkpoint_file(path)
    checkpoint = load_checkpoint_file(path, trusted=True)
    state_dict, entry = select_state_dict(checkpoint, 'auto', ('teacher', 'state_dict'))
    assert entry == 'teacher' and list(state_dict) == ['w']
    with pytest.raises(ConversionError, match=r"no 'model' entry; its entries: \['args'"):
        select_state_dict(checkpoint, 'model')
    with pytest.raises(ConversionError, match='non-tensor values'):
        select_state_dict(checkpoint, 'meta')


# ---------------------------------------------------------------- timm Swin -> mmpretrain
def test_patch_merging_permutation_matches_timm_numerically():
    from mmpretrain.models.utils import PatchMerging
    gen = torch.Generator().manual_seed(0)
    C, H, W = 8, 6, 4
    reduction, nw, nb = (torch.randn(*s, generator=gen) for s in ((2 * C, 4 * C), (4 * C, ),
                                                                   (4 * C, )))
    x = torch.randn(2, H * W, C, generator=gen)
    g = x.view(2, H, W, C)
    cat = torch.cat([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]],
                    -1).view(2, -1, 4 * C)
    timm_out = F.linear(F.layer_norm(cat, (4 * C, ), nw, nb), reduction)
    merge = PatchMerging(C, 2 * C).eval()
    merge.norm.weight.data, merge.norm.bias.data = nw, nb
    merge.reduction.weight.data = reduction
    unpermuted, _ = merge(x, (H, W))
    assert (unpermuted - timm_out).abs().max() > 0.1  # the layouts really differ
    merge.norm.weight.data, merge.norm.bias.data = (merge_norm_timm_to_unfold(nw),
                                                    merge_norm_timm_to_unfold(nb))
    merge.reduction.weight.data = merge_weight_timm_to_unfold(reduction)
    out, shape = merge(x, (H, W))
    assert shape == (3, 2)
    torch.testing.assert_close(out, timm_out, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope='module')
def timm_source():
    """A timm Swin state dict with a final norm, timm's ImageNet head and Ark's projector."""
    gen = torch.Generator().manual_seed(1)
    sd = timm_swin_state_dict(gen)
    sd['norm.weight'], sd['norm.bias'] = 1 + torch.randn(128, generator=gen) * .2, torch.randn(
        128, generator=gen) * .2
    sd['head.weight'], sd['head.bias'] = torch.randn(10, 128), torch.zeros(10)
    return sd


@pytest.mark.parametrize('pad_small_map', [False, True])
def test_timm_swin_converts_exactly(timm_source, pad_small_map):
    converted, report, backbone = timm_tool.convert(timm_source, (3, ), pad_small_map)
    # the mmpretrain index buffers equal timm's (else they would be reported as mismatched)
    assert not (report.missing or report.mismatched or report.unused or report.unexpected)
    assert set(report.dropped) == {'head.weight', 'head.bias'} | {
        f'layers.{i}.blocks.1.attn_mask' for i in range(4)}
    assert backbone['arch'] == dict(embed_dims=EMBED, depths=list(DEPTHS), num_heads=list(HEADS))
    assert backbone['window_size'] == WINDOW
    model = mmpretrain_swin(pad_small_map)
    model.load_state_dict(converted, strict=True)
    x = images()
    with torch.no_grad():
        out = model(x)[0]
        for shift_small_maps in (False, True):
            tokens = timm_swin_last_stage(timm_source, x, shift_small_maps)
            ref = authors.layer_norm(tokens, timm_source, 'norm')
            ref = ref.view(2, 4, 4, -1).permute(0, 3, 1, 2)
            if shift_small_maps == pad_small_map:  # pad_small_map=False is timm's behaviour
                torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
            else:  # the other window semantics at the 4x4 = window stage really differ
                assert (out - ref).abs().max() > 1e-2


def test_timm_swin_layouts_and_round_trip(timm_source):
    mapped = timm_swin_to_mmpretrain(timm_source)
    # timm >= 0.9: patch merging at the start of the next stage, no buffers saved
    new_layout = OrderedDict()
    for key, value in timm_source.items():
        if 'relative_position_index' in key or 'attn_mask' in key:
            continue
        for i in range(3):
            key = key.replace(f'layers.{i}.downsample.', f'layers.{i + 1}.downsample_')
        new_layout[key.replace('downsample_', 'downsample.')] = value
    assert any(k.startswith('layers.3.downsample.') for k in new_layout)
    from_new = timm_swin_to_mmpretrain(new_layout).state_dict
    for key, value in from_new.items():
        assert torch.equal(value, mapped.state_dict[key]), key
    assert {k for k in mapped.state_dict if k not in from_new} == {
        k for k in mapped.state_dict if k.endswith('relative_position_index')}
    back = mmpretrain_swin_to_timm(mapped.state_dict)
    expected = {k for k in timm_source if not k.endswith('attn_mask') and not k.startswith('head')}
    assert set(back) == expected
    for key in expected:
        assert torch.equal(back[key], timm_source[key]), key


def test_timm_swin_cli_output_loads_through_pretrained_init(timm_source, tmp_path, monkeypatch):
    src, dst = str(tmp_path / 'ark.pth'), str(tmp_path / 'swin.pth')
    torch.save({'teacher': {f'module.{k}': v for k, v in timm_source.items()},
                'state_dict': {}}, src)
    monkeypatch.setattr(sys, 'argv', ['x', src, dst, '--out-indices', '0', '1', '2', '3'])
    with pytest.raises(ConversionError, match='missing') as err:
        timm_tool.main()
    assert 'norm0.weight' in str(err.value) and 'pass --allow-missing' in str(err.value)
    monkeypatch.setattr(sys, 'argv', ['x', src, dst])
    timm_tool.main()
    meta = load_checkpoint_file(dst)['meta']
    assert meta['source_entry'] == 'teacher' and meta['backbone']['out_indices'] == (3, )
    model = build_in_scope(dict(meta['backbone'], type='SwinTransformer',
                                init_cfg=dict(type='Pretrained', checkpoint=dst)), 'mmpretrain')
    model.init_weights()
    assert torch.equal(model.norm3.weight, timm_source['norm.weight'])
    assert torch.equal(model.stages[2].blocks[1].attn.w_msa.qkv.weight,
                       timm_source['layers.2.blocks.1.attn.qkv.weight'])


# ---------------------------------------------------------------- Ark -> fxmm
SWIN_CFG = dict(type='mmpretrain.SwinTransformer',
                arch=dict(embed_dims=EMBED, depths=list(DEPTHS), num_heads=list(HEADS)),
                window_size=WINDOW, drop_path_rate=0., out_indices=(0, 1, 2, 3))


def ark_model_cfg(pad_small_map=False, out_indices=(3, )):
    """Ark in fxmm (as configs/ark.py): the last stage only, a projector, a head per dataset."""
    return dict(type='FoundationX',
                datasets=dict(mimic=dict(cls_classes=['a', 'b']),
                              shenzhen=dict(cls_classes=['tb'])),
                backbone=dict(SWIN_CFG, pad_small_map=pad_small_map, out_indices=out_indices),
                cls_head=dict(type='MultiDatasetClsHead', in_channels=128, projector_dims=24))


def ark_state_dict(timm_source, mlp=False):
    gen = torch.Generator().manual_seed(2)
    sd = OrderedDict(timm_source)
    if mlp:
        sd['projector.0.weight'], sd['projector.2.weight'] = torch.ones(24, 128), torch.ones(24, 24)
    else:
        sd['projector.weight'] = torch.randn(24, 128, generator=gen) * .1
        sd['projector.bias'] = torch.randn(24, generator=gen)
    for i, n in enumerate((2, 1)):
        sd[f'omni_heads.{i}.weight'] = torch.randn(n, 24, generator=gen)
        sd[f'omni_heads.{i}.bias'] = torch.randn(n, generator=gen)
    return sd


def test_ark_checkpoint_converts_exactly_into_foundation_x(timm_source):
    source = ark_state_dict(timm_source)
    converted, report = ark_tool.convert(source, ark_model_cfg(), ('mimic', 'shenzhen'))
    assert not (report.missing or report.mismatched or report.unused or report.unexpected)
    report.check()
    model = build_in_scope(ark_model_cfg(), 'fxmm')
    model.load_state_dict(converted, strict=True)
    model.eval()
    x = images(1)
    with torch.no_grad():
        outs = model(x, mode='tensor')
        pooled = authors.layer_norm(timm_swin_last_stage(source, x, shift_small_maps=False),
                                    source, 'norm').mean(1)
        projected = F.linear(pooled, source['projector.weight'], source['projector.bias'])
    for i, name in enumerate(('mimic', 'shenzhen')):
        ref = F.linear(projected, source[f'omni_heads.{i}.weight'], source[f'omni_heads.{i}.bias'])
        torch.testing.assert_close(outs[f'{name}.cls'], ref, atol=1e-4, rtol=1e-4)
    # a plain FoundationX checkpoint fills both copies of a TeacherStudent
    pair = build_in_scope(dict(type='TeacherStudent', model=ark_model_cfg()), 'fxmm')
    pair.load_state_dict(converted, strict=True)
    assert torch.equal(pair.teacher.cls_head.projector.weight, source['projector.weight'])
    _, report = ark_tool.convert(source, ark_model_cfg(pad_small_map=True), ('mimic', 'shenzhen'))
    assert any('pad_small_map=True' in note for note in report.notes)
    # multi-scale outputs: timm has no norms for stages 1-3
    _, report = ark_tool.convert(source, ark_model_cfg(out_indices=(0, 1, 2, 3)),
                                 ('mimic', 'shenzhen'))
    assert set(report.missing) == {f'backbone.norm{i}.{p}' for i in range(3)
                                   for p in ('weight', 'bias')}
    assert any('norm0' in note for note in report.notes)
    with pytest.raises(ConversionError, match='6 missing'):
        report.check()
    report.check(allow_missing=True)


def test_ark_mlp_projector_and_head_count_errors(timm_source):
    with pytest.raises(ConversionError, match='--backbone-only'):
        ark_tool.convert_ark(ark_state_dict(timm_source, mlp=True), ('mimic', 'shenzhen'))
    with pytest.raises(ConversionError, match='2 omni_heads but 3 Ark dataset names'):
        ark_tool.convert_ark(ark_state_dict(timm_source), ('a', 'b', 'c'))
    _, report = ark_tool.convert(ark_state_dict(timm_source, mlp=True), ark_model_cfg(),
                                 backbone_only=True)
    assert set(report.missing) >= {'cls_head.projector.weight', 'cls_head.heads.mimic.weight'}
    assert 'projector.0.weight' in report.dropped and not report.unused


def test_ark_cli_writes_both_copies_of_a_training_checkpoint(timm_source, tmp_path,
                                                             monkeypatch):
    student = ark_state_dict(timm_source)
    teacher = OrderedDict((k, v + 1 if v.is_floating_point() else v) for k, v in student.items())
    src, dst, config = (str(tmp_path / name) for name in ('ark.pth', 'out.pth', 'ark_cfg.py'))
    torch.save({'state_dict': {f'module.{k}': v for k, v in student.items()},
                'teacher': {f'module.{k}': v for k, v in teacher.items()}, 'epoch': 3}, src)
    multi_scale = ark_model_cfg(out_indices=(0, 1, 2, 3))
    Config(dict(model=dict(type='TeacherStudent', model=multi_scale))).dump(config)
    argv = ['x', src, dst, '--config', config, '--ark-datasets', 'mimic', 'shenzhen',
            '--both-copies']
    monkeypatch.setattr(sys, 'argv', argv)
    with pytest.raises(ConversionError, match='6 missing'):
        ark_tool.main()
    monkeypatch.setattr(sys, 'argv', argv + ['--allow-missing'])
    ark_tool.main()
    checkpoint = load_checkpoint_file(dst)
    assert checkpoint['meta']['source_entries'] == ['state_dict', 'teacher']
    pair = build_in_scope(dict(type='TeacherStudent', model=multi_scale), 'fxmm')
    result = pair.load_state_dict(checkpoint['state_dict'], strict=False)
    assert {k.split('.')[2] for k in result.missing_keys} == {'norm0', 'norm1', 'norm2'}
    assert torch.equal(pair.student.cls_head.heads.shenzhen.bias, student['omni_heads.1.bias'])
    assert torch.equal(pair.teacher.cls_head.heads.shenzhen.bias, teacher['omni_heads.1.bias'])


# ---------------------------------------------------------------- Foundation X -> fxmm
def fx_model_cfg():
    """A tiny FoundationX like the authors' model: cls + DINO (2 datasets) + seg."""
    return dict(
        type='FoundationX',
        datasets=dict(tbx=dict(cls_classes=['tb'], det_classes=['active', 'obsolete']),
                      node=dict(cls_classes=['nodule'], det_classes=['nodule', 'mass']),
                      jsrt=dict(seg_classes=['heart', 'lung', 'clavicle']),
                      siim=dict(seg_classes=['pneumothorax'])),
        backbone=dict(SWIN_CFG, pad_small_map=True),
        cls_head=dict(type='MultiDatasetClsHead', in_channels=128),
        loc_head=dict(get_tiny_model_cfg(with_loc=True).loc_head, in_channels=CHANNELS[1:]),
        seg_neck=dict(type='SharedUperNet', in_channels=CHANNELS, channels=16),
        seg_head=dict(type='MultiDatasetSegHead', in_channels=16))


def randomise(model, seed):
    """Random values in every float tensor (norm weights near 1, BN variances positive)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif 'norm' in name or name.endswith(('gn.weight', 'bn.weight')):
                t.copy_(1 + torch.randn(t.shape, generator=gen) * 0.1)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
    model.eval()
    return model


DINO_LAYOUT = idea_dino.DinoLayout([idea_dino.decoder_prefix(0), idea_dino.decoder_prefix(1)],
                                 num_layers=2, num_levels=4)


def fx_source(seed):
    """One copy of the authors' model: timm Swin under backbone.0 with their norms and heads,
    IDEA DINO keys (two decoders) written from a fxmm SharedDINO by the inverted mapping, and
    segmentation decoder keys. Returns the state dict and the fxmm loc_head it came from."""
    gen = torch.Generator().manual_seed(seed)
    sd = timm_swin_state_dict(gen, 'backbone.0.')
    for name, dim in [('norm', 128), ('Locnorm1', 32), ('Locnorm2', 64), ('Locnorm3', 128),
                      *[(f'Segnorm{i}', c) for i, c in enumerate(CHANNELS)]]:
        sd[f'backbone.0.{name}.weight'] = 1 + torch.randn(dim, generator=gen) * .2
        sd[f'backbone.0.{name}.bias'] = torch.randn(dim, generator=gen) * .2
    sd['backbone.0.head.weight'] = torch.randn(14, 128, generator=gen)
    for k in range(2):
        sd[f'backbone.0.classification_heads.{k}.weight'] = torch.randn(1, 128, generator=gen)
        sd[f'backbone.0.classification_heads.{k}.bias'] = torch.randn(1, generator=gen)
    sd['backbone.0.segmentation_PPN.bottleneck.0.weight'] = torch.randn(128, 256, 3, 3)
    sd['backbone.0.segmentation_heads.0.weight'] = torch.randn(1, 16, 3, 3)
    loc_head = randomise(build_in_scope(fx_model_cfg(), 'fxmm'), seed).loc_head
    tie = ('query_embedding', 'memory_trans_fc', 'memory_trans_norm', 'dn_query_generator')
    for name in tie:  # one module in the authors' model, a copy per fxmm branch
        getattr(loc_head.branches['node'], name).load_state_dict(
            getattr(loc_head.branches['tbx'], name).state_dict())
    loc_classes = dict(tbx=2, node=2)
    rules = idea_dino.dino_rules(DINO_LAYOUT, loc_classes, num_in_levels=3)
    fxmm_loc = {f'loc_head.{k}': v for k, v in loc_head.state_dict().items()}
    sd.update(KeyMapper(rules).inverse().convert(fxmm_loc).state_dict)
    for lvl in range(4):
        sd[f'input_proj.{lvl}.0.bias'] = torch.randn(256, generator=gen) * .1
    return sd, loc_head


def test_foundation_x_layout_reads_what_the_authors_code_writes():
    sd, _ = fx_source(0)
    layout = idea_dino.DinoLayout.read(sd)
    assert layout == DINO_LAYOUT
    # keys of the authors' DINO (IDEA names), aliases inside the decoders included
    for key in ('transformer.decoder.1.layers.0.self_attn.in_proj_weight',
                'transformer.decoder.0.layers.1.norm3.weight', 'class_embed.1.0.weight',
                'transformer.decoder.0.bbox_embed.1.layers.2.bias',
                'transformer.enc_out_bbox_embed.1.layers.0.weight', 'transformer.tgt_embed.weight',
                'transformer.enc_output_norm.bias', 'input_proj.3.1.weight',
                'transformer.encoder.layers.0.self_attn.sampling_offsets.weight'):
        assert key in sd, key


@pytest.fixture(scope='module')
def fx_converted():
    student, student_loc = fx_source(10)
    teacher, _ = fx_source(11)
    checkpoint = {'model': {f'module.{k}': v for k, v in student.items()},
                  'teacher_model': teacher, 'epoch': 3}
    converted, reports = fx_tool.convert(checkpoint, fx_model_cfg(), 'both', ('tbx', 'node'),
                                         ('tbx', 'node'))
    return student, student_loc, teacher, converted, reports


def test_foundation_x_checkpoint_converts_into_teacher_student(fx_converted):
    student, student_loc, teacher, converted, reports = fx_converted
    report = reports['student']
    seg = {k for k in build_in_scope(fx_model_cfg(), 'fxmm').state_dict()
           if k.startswith(('seg_neck.', 'seg_head.'))}
    assert set(report.missing) == seg | {'backbone.norm0.weight', 'backbone.norm0.bias'}
    assert set(report.unused) == {'backbone.0.segmentation_PPN.bottleneck.0.weight',
                                  'backbone.0.segmentation_heads.0.weight'}
    assert not (report.mismatched or report.unexpected)
    assert report.dropped['input_proj.2.0.bias'] == idea_dino.INPUT_PROJ_BIAS
    assert 'backbone.0.Locnorm3.weight' in report.dropped
    notes = ' '.join(report.notes)
    assert 'input_proj conv biases' in notes and 'segmentation decoder' in notes
    assert 'localisation is approximate: its stage-4 norm is norm' in notes
    with pytest.raises(ConversionError, match='missing.*--allow-missing.*--allow-unused'):
        report.check()
    report.check(allow_missing=True, allow_unused=True)

    pair = build_in_scope(dict(type='TeacherStudent', model=fx_model_cfg()), 'fxmm')
    result = pair.load_state_dict(converted, strict=False)
    # (BatchNorm fills an absent num_batches_tracked itself)
    assert set(result.missing_keys) == {f'{c}.{k}' for c in ('student', 'teacher')
                                        for k in report.missing
                                        if not k.endswith('num_batches_tracked')}
    assert not result.unexpected_keys
    # the DINO went through the authors' layout and back unchanged
    for key, value in student_loc.state_dict().items():
        assert torch.equal(pair.student.loc_head.state_dict()[key], value), key
    assert torch.equal(pair.teacher.backbone.norm3.weight, teacher['backbone.0.norm.weight'])
    assert torch.equal(pair.student.backbone.norm1.bias, student['backbone.0.Locnorm1.bias'])


def test_foundation_x_cls_path_is_exact(fx_converted):
    student, _, _, _, _ = fx_converted
    converted, reports = fx_tool.convert({'model': student}, fx_model_cfg(), 'student',
                                         ('tbx', 'node'), ('tbx', 'node'))
    model = build_in_scope(fx_model_cfg(), 'fxmm')
    model.load_state_dict(converted, strict=False)
    model.eval()
    x = images(3)
    with torch.no_grad():
        outs = model(x, mode='tensor')
        tokens = timm_swin_last_stage(student, x, shift_small_maps=True, prefix='backbone.0.')
        pooled = authors.layer_norm(tokens, student, 'backbone.0.norm').mean(1)
    for k, name in enumerate(('tbx', 'node')):
        head = f'backbone.0.classification_heads.{k}'
        ref = F.linear(pooled, student[head + '.weight'], student[head + '.bias'])
        torch.testing.assert_close(outs[f'{name}.cls'], ref, atol=1e-4, rtol=1e-4)


def test_foundation_x_options_and_errors(fx_converted):
    student = fx_converted[0]
    converted, _ = fx_tool.convert({'teacher_model': student}, fx_model_cfg(), 'teacher',
                                   ('tbx', 'node'), ('tbx', 'node'), norm3_from='Locnorm3')
    assert torch.equal(converted['backbone.norm3.weight'], student['backbone.0.Locnorm3.weight'])
    with pytest.raises(ConversionError, match='2 DINO decoder.*but 1 localisation'):
        fx_tool.convert({'model': student}, fx_model_cfg(), 'student', ('tbx', 'node'), ('tbx', ))
    with pytest.raises(ConversionError, match="no 'teacher_model' entry"):
        fx_tool.convert({'model': student}, fx_model_cfg(), 'both', ('tbx', 'node'),
                        ('tbx', 'node'))
    with pytest.raises(ConversionError, match="not a Foundation X checkpoint"):
        fx_tool.convert_foundation_x({'layers.0.blocks.0.norm1.weight': torch.ones(1)}, ())


# ---------------------------------------------------------------- fxmm -> mmpretrain/mmdet/mmseg
@pytest.fixture(scope='module')
def fxmm_checkpoint(tmp_path_factory):
    """A TeacherStudent checkpoint of the tiny model (random weights) and its config file."""
    folder = tmp_path_factory.mktemp('fxmm')
    student = randomise(build_in_scope(fx_model_cfg(), 'fxmm'), 20)
    teacher = randomise(build_in_scope(fx_model_cfg(), 'fxmm'), 21)
    config, checkpoint = str(folder / 'tiny.py'), str(folder / 'tiny.pth')
    Config(dict(model=dict(type='TeacherStudent', model=fx_model_cfg()))).dump(config)
    save_converted(join_copies(student.state_dict(), teacher.state_dict()),
                   checkpoint, meta=dict())
    return config, checkpoint, student, teacher, folder


def run_export(tool, monkeypatch, fxmm_checkpoint, name, *options):
    config, checkpoint, _, _, folder = fxmm_checkpoint
    out = str(folder / name)
    monkeypatch.setattr(sys, 'argv', ['x', config, checkpoint, out, *options])
    tool.main()
    return Config.fromfile(out + '.py'), load_checkpoint_file(out + '.pth')['state_dict']


def test_export_backbone_to_mmpretrain(fxmm_checkpoint, monkeypatch):
    cfg, _ = run_export(pretrain_tool, monkeypatch, fxmm_checkpoint, 'swin', '--copy', 'teacher')
    assert cfg.default_scope == 'mmpretrain' and cfg.model.type == 'SwinTransformer'
    backbone = build_in_scope(cfg.model, 'mmpretrain')
    backbone.init_weights()  # init_cfg: Pretrained from the written .pth
    backbone.eval()
    teacher = fxmm_checkpoint[3]
    x = images(4, size=64)
    with torch.no_grad():
        for ours, theirs in zip(teacher.backbone(x), backbone(x)):
            torch.testing.assert_close(theirs, ours, atol=0, rtol=0)


def test_export_detector_to_mmdet(fxmm_checkpoint, monkeypatch):
    cfg, state_dict = run_export(mmdet_tool, monkeypatch, fxmm_checkpoint, 'dino', '--dataset',
                                 'node')
    assert cfg.default_scope == 'mmdet' and cfg.load_from.endswith('dino.pth')
    assert cfg.model.bbox_head.num_classes == 2 and cfg.model.backbone.out_indices == (1, 2, 3)
    detector = build_in_scope(cfg.model, 'mmdet')
    detector.load_state_dict(state_dict, strict=True)
    detector.eval()
    student = fxmm_checkpoint[2]
    x = images(5, size=64)
    meta = dict(img_shape=(64, 64), batch_input_shape=(64, 64), ori_shape=(64, 64),
                scale_factor=(1., 1.))
    with torch.no_grad():
        theirs = detector.predict(x, [DetDataSample(metainfo=meta) for _ in range(2)],
                                  rescale=False)
        ours = student.loc_head.predict(student.extract_feat(x),
                                        [CXRDataSample(metainfo=meta) for _ in range(2)], 'node',
                                        rescale=False)
    for t, o in zip(theirs, ours):
        assert len(o.bboxes) == 10
        torch.testing.assert_close(t.pred_instances.bboxes, o.bboxes, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(t.pred_instances.scores, o.scores, atol=1e-5, rtol=1e-4)
        assert torch.equal(t.pred_instances.labels, o.labels)
    # mmdet's preprocessor on 0..255 RGB = fxmm's on the 0..1 grey image
    grey = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(6))
    det_in = detector.data_preprocessor(dict(inputs=[(grey * 255).repeat(3, 1, 1)]))['inputs']
    fx_in = student.data_preprocessor(dict(inputs=[grey]))['inputs']
    torch.testing.assert_close(det_in, fx_in, atol=1e-5, rtol=1e-5)


def test_export_segmentor_to_mmseg(fxmm_checkpoint, monkeypatch):
    student = fxmm_checkpoint[2]
    x = images(7, size=64)
    metas = [dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64))] * 2
    for dataset, masks in (('jsrt', 3), ('siim', 1)):
        cfg, state_dict = run_export(mmseg_tool, monkeypatch, fxmm_checkpoint, f'uper_{dataset}',
                                     '--dataset', dataset)
        head = cfg.model.decode_head
        assert (head.num_classes, head.out_channels) == ((2, 1) if masks == 1 else (3, 3))
        segmentor = build_in_scope(cfg.model, 'mmseg')
        segmentor.load_state_dict(state_dict, strict=True)
        segmentor.eval()
        with torch.no_grad():
            logits = segmentor.encode_decode(x, metas)
            torch.testing.assert_close(logits, student(x, mode='tensor')[f'{dataset}.seg'],
                                       atol=1e-4, rtol=1e-4)
            if masks == 1:  # mmseg's binary mode thresholds the sigmoid as fxmm does
                preds = segmentor.predict(x, [SegDataSample(metainfo=m) for m in metas])
                samples = [CXRDataSample(metainfo=dict(m, batch_input_shape=(64, 64)))
                           for m in metas]
                ours = student.seg_head.predict(student.seg_features(student.extract_feat(x)),
                                                samples, 'siim')
                for p, o in zip(preds, ours):
                    assert torch.equal(p.pred_sem_seg.data.bool(), o.data)
    grey = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(8))
    seg_in = segmentor.data_preprocessor(dict(inputs=[(grey * 255).repeat(3, 1, 1)]))['inputs']
    torch.testing.assert_close(seg_in, student.data_preprocessor(dict(inputs=[grey]))['inputs'],
                               atol=1e-5, rtol=1e-5)


def test_exports_refuse_what_they_cannot_represent(fxmm_checkpoint):
    cfg = fx_model_cfg()
    cfg['seg_head'] = dict(type='MultiDatasetSegHead', in_channels=16, mid_channels=8)
    model = build_in_scope(cfg, 'fxmm')
    with pytest.raises(ConversionError, match='not one 1x1 conv'):
        mmseg_tool.export_upernet(model, cfg, 'jsrt')
    kernel3 = dict(cfg, seg_head=dict(type='MultiDatasetSegHead', in_channels=16, kernel_size=3))
    with pytest.raises(ConversionError, match='not one 1x1 conv'):
        mmseg_tool.export_upernet(build_in_scope(kernel3, 'fxmm'), kernel3, 'jsrt')
    authors = dict(kernel3, seg_neck=dict(type='PSPFPNNeck', in_channels=CHANNELS, channels=16))
    with pytest.raises(ConversionError, match='a PSPFPNNeck, not a SharedUperNet'):
        mmseg_tool.export_upernet(build_in_scope(authors, 'fxmm'), authors, 'jsrt')
    with pytest.raises(KeyError, match="no branch for dataset 'jsrt'"):
        mmdet_tool.export_dino(model, cfg, 'jsrt')
    # a checkpoint that does not fit the config is named, key by key
    state_dict, what = fxmm_state_dict(load_checkpoint_file(fxmm_checkpoint[1]), 'teacher')
    assert what.endswith('the teacher of a TeacherStudent')
    with pytest.raises(ConversionError, match=r'does not fit the config.*heads\.jsrt\.0\.weight'):
        load_fxmm_model(cfg, state_dict)
