"""The DINO of the authors' released Foundation X: SharedDINO's release options, the IDEA-DINO
key rules, and the outputs of the converted model against an independent reference forward
(tests/release_reference_dino.py, float64).

- tiny (CPU, seconds): a SharedDINO with the release options, written into the authors'
  layout by the inverted key rules, computes what the reference computes on that layout;
- full size: the random-weight stand-in of the released file (``released_fx``, the exact
  layout) converts into configs/foundation_x_release.py, and every one of the 6 decoders'
  class logits and boxes, at every decoder layer, match the reference at 224 px,
  max |diff| <= 1e-4, student and teacher.
"""

import pytest
import torch
from test_shared_dino import random_feats, samples, tiny_cfg

import release_reference_dino as ref_dino
from tool_scripts import load_converter
from fxmm.apis import build_in_scope
from fxmm.models.detectors.shared_dino import SharedDINO
from fxmm.registry import MODELS
from fxmm.utils.state_dict_mapping import KeyMapper, match_state_dict
from fxmm.utils.state_dict_mapping import idea_dino

TOL = 1e-4  # max |diff| (the bound)
# the release's options at a small scale: 5 class rows (class 0 at row 1), 7 label rows
RELEASE_BRANCH = dict(memory_proj=True, separate_box_refine=True, num_class_rows=5,
                      first_class_row=1, num_label_rows=7, ref_eps=1e-3)
BIASED_NECK = dict(type='mmdet.ChannelMapper', kernel_size=1, act_cfg=None,
                   norm_cfg=dict(type='GN', num_groups=32), bias=True)
DATASETS = dict(tbx=3, node=1)
fx_tool = load_converter('foundation_x_to_fxmm')


def tiny(branch_cfg=RELEASE_BRANCH, neck=BIASED_NECK, **overrides) -> SharedDINO:
    """test_shared_dino's tiny SharedDINO (8 heads, 4 points, width 256 as the release;
    1 + 2 layers, 30 queries) with the release options."""
    model = MODELS.build(tiny_cfg(dataset_classes=DATASETS, neck=neck, branch_cfg=branch_cfg,
                                  **overrides))
    model.init_weights()
    return model


def randomise(model, seed: int):
    """Random values in every float tensor (norm weights near 1), one module per source
    tensor where the authors share one across decoders (``tgt_embed``, ``label_enc``)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                is_norm = 'norm' in name or '.gn.' in name
                t.copy_((1 if is_norm and name.endswith('weight') else 0)
                        + torch.randn(t.shape, generator=gen) * 0.1)
        first, *others = model.branches.values()
        for branch in others:
            branch.query_embedding.load_state_dict(first.query_embedding.state_dict())
            branch.dn_query_generator.load_state_dict(first.dn_query_generator.state_dict())
    return model.eval()


def empty(batch: int, size: int) -> list:
    """Data samples of ``batch`` images of ``size`` px without boxes."""
    return samples([[]] * batch, [[]] * batch, size)


def head_outputs(loc_head, feats, batch_data_samples):
    """fxmm's class logits and boxes of every decoder layer, per dataset, one encoder run."""
    encoded = loc_head.encode(feats, batch_data_samples)
    out = {}
    for name in loc_head.dataset_names:
        head_inputs = loc_head.decode(encoded, batch_data_samples, name)
        hidden_states, references = loc_head._matching_part(head_inputs)
        out[name] = loc_head.branch(name).head_outputs(hidden_states, references)
    return out


def max_diff(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


# ------------------------------------------------------------------------ release options
def test_release_options_build_the_released_modules():
    model = tiny()
    state = model.state_dict()
    tbx, node = model.branches['tbx'], model.branches['node']
    assert state['neck.convs.0.conv.bias'].shape == (256, )  # input_proj conv biases
    assert 'neck.extra_convs.0.conv.bias' in state
    assert tbx.memory_proj.weight.shape == (256, 256)
    assert tbx.memory_proj is not node.memory_proj
    # one refinement MLP of the branch for all its decoder layers (a mmdet box branch)
    assert len(tbx.bbox_head.reg_branches) == 3
    assert [id(b) for b in tbx.box_refine_branches] == [id(tbx.refine_branch)] * 2
    assert all(tbx.refine_branch is not b for b in tbx.bbox_head.reg_branches)
    assert torch.all(tbx.refine_branch[-1].weight == 0)
    assert len([k for k in state if k.startswith('branches.tbx.refine_branch.')]) == 6
    # class rows: 5 rows for 3 and 1 classes, class 0 at row 1; a 7-row label table
    assert all(b.num_classes == n for b, n in zip((tbx, node), (3, 1)))
    for branch in (tbx, node):
        assert all(cls.out_features == 5 for cls in branch.bbox_head.cls_branches)
        assert branch.dn_query_generator.label_embedding.num_embeddings == 7
        assert branch.dn_query_generator.num_classes == 5  # noisy labels from the class rows
    default = tiny(branch_cfg=None, neck=dict(BIASED_NECK, bias='auto'))
    assert default.branches['tbx'].memory_proj is None
    assert default.branches['tbx'].refine_branch is None
    assert 'neck.convs.0.conv.bias' not in default.state_dict()
    assert default.branches['tbx'].bbox_head.cls_branches[0].out_features == 3


def test_release_options_refuse_what_does_not_fit():
    with pytest.raises(ValueError, match='do not fit num_class_rows 3'):
        tiny(branch_cfg=dict(num_class_rows=3, first_class_row=1))
    with pytest.raises(ValueError, match='num_label_rows .4. must be >= num_class_rows .5.'):
        tiny(branch_cfg=dict(num_class_rows=5, num_label_rows=4))
    with pytest.raises(ValueError, match='ref_eps'):
        tiny(branch_cfg=dict(ref_eps=1e-7))
    with pytest.raises(ValueError, match="branch_cfg must not set 'num_classes'"):
        tiny(branch_cfg=dict(num_classes=2))
    with pytest.raises(ValueError, match='neck.out_channels is 128, but the detector needs 256'):
        tiny(neck=dict(type='mmdet.ChannelMapper', out_channels=128))


def test_predictions_keep_the_datasets_rows_and_label_them_from_0():
    model = randomise(tiny(), 0)
    with torch.no_grad():
        for branch in model.branches.values():  # the row before class 0 outscores every class
            for cls in branch.bbox_head.cls_branches:
                cls.bias[0] = 20.
    feats, batch = random_feats(2, 64), empty(2, 64)
    with torch.no_grad():
        preds = model.predict_datasets(feats, batch, ['tbx', 'node'])
        outs = head_outputs(model, feats, batch)
    for name, n in DATASETS.items():
        logits = outs[name][0][-1]  # last layer (B, Q, 5)
        assert logits[..., 0].min() > logits[..., 1:].max()
        for img, pred in enumerate(preds[name]):
            assert pred.labels.min() >= 0 and pred.labels.max() < n
            # the top-10 of the dataset's rows 1..n, as sigmoid scores
            expected = logits[img, :, 1:1 + n].sigmoid().flatten().topk(10).values
            torch.testing.assert_close(pred.scores, expected)


def test_training_maps_labels_to_rows_and_reaches_the_release_modules():
    model = tiny().train()
    batch = samples([[[4, 6, 40, 30]], [[10, 10, 60, 50], [0, 30, 20, 62]]], [[0], [2, 1]], 64)
    rows = model.branch('tbx').with_row_labels(batch)
    assert rows[1].gt_instances.labels.tolist() == [3, 2]
    assert batch[1].gt_instances.labels.tolist() == [2, 1]  # the caller's samples unchanged
    assert torch.equal(rows[1].gt_instances.bboxes, batch[1].gt_instances.bboxes)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    feats = random_feats(2, 64, seed=1)
    for _ in range(2):  # the second step: zero-initialised last layers have moved
        optim.zero_grad(set_to_none=True)
        losses = model.loss(feats, batch, 'tbx')
        assert all(torch.isfinite(v).all() for v in losses.values())
        sum(v.sum() for v in losses.values()).backward()
        optim.step()
    tbx = model.branches['tbx']
    for module in (tbx.memory_proj, tbx.refine_branch, model.neck, tbx.bbox_head):
        no_grad = [n for n, p in module.named_parameters()
                   if p.grad is None or not p.grad.abs().sum() > 0]
        assert not no_grad, f'{type(module).__name__}: no gradient for {no_grad}'


def test_teacher_query_states_see_the_projected_memory():
    model = tiny().train()
    feats = random_feats(2, 64, seed=3)
    batch = samples([[[4, 6, 40, 30]], [[10, 10, 60, 50]]], [[0], [0]], 64)
    _, states, anchors = model.loss_and_query_states(feats, batch, 'node')
    model.eval()
    with torch.no_grad():
        again = model.query_states(feats, batch, 'node', anchors)
    torch.testing.assert_close(again, states.detach(), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------- rules + reference, tiny
def tiny_source(model):
    """The authors' multi-decoder layout of ``model``'s tensors (inverted key rules)."""
    layout = idea_dino.DinoLayout(
        [idea_dino.decoder_prefix(k) for k in range(len(DATASETS))], num_layers=2,
        num_levels=4, output_heads=True, memory_proj=True, per_decoder_memory_trans=True)
    rules = idea_dino.dino_rules(layout, DATASETS, 3, idea_dino.DinoTarget.of(model))
    fxmm_sd = {f'loc_head.{k}': v for k, v in model.state_dict().items()}
    return layout, rules, KeyMapper(rules).inverse().convert(fxmm_sd).state_dict


def test_tiny_release_dino_equals_the_reference_on_the_authors_layout():
    model = randomise(tiny(), 1).double()
    layout, rules, source = tiny_source(model)
    assert idea_dino.DinoLayout.read(source) == layout
    for key in ('transformer.enc_outputMem_LinearProjection.1.weight',
                'transformer.enc_output.0.bias', 'transformer.enc_output_norm.1.weight',
                'class_embed_.1.0.weight', 'bbox_embed_.0.1.layers.2.bias',
                'bbox_embed.1.0.layers.0.weight', 'input_proj.3.0.bias', 'label_enc.weight',
                'transformer.decoder.0.bbox_embed.1.layers.1.bias',
                'transformer.tgt_embed.weight'):
        assert key in source, key
    assert source['class_embed_.0.1.weight'].shape == (5, 256)
    assert source['label_enc.weight'].shape == (7, 256)
    # and back: every key of the model filled, nothing left over
    fxmm_sd = {f'loc_head.{k}': v for k, v in model.state_dict().items()}
    converted, report = match_state_dict(KeyMapper(rules).convert(source), fxmm_sd)
    assert all(torch.equal(converted[k], v) for k, v in fxmm_sd.items())
    assert not (report.missing or report.unused or report.unexpected or report.mismatched)

    feats, batch = [f.double() for f in random_feats(2, 64, seed=2)], empty(2, 64)
    with torch.no_grad():
        ours = head_outputs(model, feats, batch)
        encoded = ref_dino.fx_dino_encode(source, feats[1:])
        for k, name in enumerate(DATASETS):
            logits, boxes = ref_dino.fx_dino_decode(source, encoded, k)
            assert logits.shape == (2, 2, 30, 5) and boxes.shape == (2, 2, 30, 4)
            # (positions and grids are float32 in mmdet's code and in the authors')
            assert max_diff(ours[name][0], logits) <= TOL
            assert max_diff(ours[name][1], boxes) <= TOL
            assert logits.std() > 0.1 and boxes.std() > 0.01  # not constant outputs


def test_rules_for_an_mmdet_dino_target_take_the_datasets_rows_and_name_what_has_no_place():
    """The release into mmdet's DINO (configs/foundation_x.py's design): class 0 is the
    source's row 1 (COCO ids), label rows likewise; the memory projection and the separate
    refinement have no place (unused, reported); class_embed is dropped with the reason."""
    model = randomise(tiny(), 2)
    _, _, source = tiny_source(model)
    mmdet_dino = tiny(branch_cfg=None, neck=dict(BIASED_NECK, bias='auto'))
    source['class_embed.0.0.weight'] = torch.randn(5, 256)  # the authors' unused copy
    layout = idea_dino.DinoLayout.read(source)
    rules = idea_dino.dino_rules(layout, DATASETS, 3)
    converted, report = match_state_dict(
        KeyMapper(rules).convert(source),
        {f'loc_head.{k}': v for k, v in mmdet_dino.state_dict().items()})
    assert not (report.missing or report.mismatched)
    unused = set(report.unused) | {k.split(' (from ')[1][:-1] for k in report.unexpected}
    assert {k.split('.')[1] for k in unused if k.startswith('transformer.')} == {
        'enc_outputMem_LinearProjection', 'decoder'}  # + the refinement's decoder aliases
    assert any(k.startswith('bbox_embed.1.') for k in unused)
    assert report.dropped['class_embed.0.0.weight'] == idea_dino.UNUSED_CLASS_EMBED
    assert report.dropped['input_proj.0.0.bias'] == idea_dino.INPUT_PROJ_BIAS
    tbx = 'loc_head.branches.tbx.'
    assert torch.equal(converted[tbx + 'bbox_head.cls_branches.0.weight'],
                       source['class_embed_.0.0.weight'][1:4])
    assert torch.equal(converted[tbx + 'dn_query_generator.label_embedding.weight'],
                       source['label_enc.weight'][1:4])
    assert torch.equal(converted[tbx + 'bbox_head.reg_branches.1.4.bias'],
                       source['bbox_embed_.0.1.layers.2.bias'])


# ------------------------------------------------------------------- the release, full size
@pytest.fixture(scope='module')
def release_loc_heads(released_fx_converted):
    """The converted loc_head of each copy (configs/foundation_x_release.py, float64) and the
    student's conversion report."""
    converted, reports, cfg = released_fx_converted
    loc_cfg = dict(cfg['loc_head'], dataset_classes={
        name: len(cfg['datasets'][name]['det_classes']) for name in fx_tool.FX_LOC_DATASETS})
    heads = []
    for copy_name in ('student', 'teacher'):
        prefix = f'{copy_name}.loc_head.'
        loc = build_in_scope(loc_cfg, 'fxmm')
        loc.load_state_dict({k[len(prefix):]: v for k, v in converted.items()
                             if k.startswith(prefix)}, strict=True)
        heads.append(loc.double().eval())
    return heads, reports['student'], fx_tool.FX_LOC_DATASETS


def test_released_dino_keys_all_convert(release_loc_heads, released_fx):
    _, report, _ = release_loc_heads
    loc_source = {k for k in released_fx[0] if not k.startswith('backbone.')}
    dropped = {k for k in loc_source if k in report.dropped}
    assert not [k for k in report.missing if '.loc_head.' in k or k.startswith('loc_head.')]
    assert not [k for k in report.unused + report.unexpected if not k.startswith('backbone.')]
    # the only loc keys consumed without a place: class_embed (6 decoders x 6 layers, and
    # their aliases in the decoders), never used by the authors' forward
    assert dropped == {k for k in loc_source
                       if k.startswith('class_embed.') or '.class_embed.' in k}
    assert len(dropped) == 2 * 2 * 36
    assert {report.dropped[k] for k in dropped} == {idea_dino.UNUSED_CLASS_EMBED}


@pytest.mark.parametrize('copy_index', [0, 1], ids=['student', 'teacher'])
def test_released_dino_outputs_match_the_authors_forward(copy_index, release_loc_heads,
                                                         released_fx):
    heads, _, datasets = release_loc_heads
    loc, source = heads[copy_index], released_fx[copy_index]
    # the loc path's backbone maps at 224 px (strides 4-32); the DINO takes stages 2-4
    gen = torch.Generator().manual_seed(copy_index)
    feats = [torch.randn(1, c, 224 // s, 224 // s, generator=gen, dtype=torch.float64)
             for c, s in zip((128, 256, 512, 1024), (4, 8, 16, 32))]
    batch = empty(1, 224)
    with torch.no_grad():
        ours = head_outputs(loc, feats, batch)
        encoded = ref_dino.fx_dino_encode(source, feats[1:])
        diffs = {}
        for k, name in enumerate(datasets):
            logits, boxes = ref_dino.fx_dino_decode(source, encoded, k)
            assert logits.shape == (6, 1, 900, 14) and boxes.shape == (6, 1, 900, 4)
            diffs[f'{name} logits'] = max_diff(ours[name][0], logits)
            diffs[f'{name} boxes'] = max_diff(ours[name][1], boxes)
    print(f'\n{("student", "teacher")[copy_index]} DINO max |diff|: {diffs}')
    assert max(diffs.values()) <= TOL, diffs
