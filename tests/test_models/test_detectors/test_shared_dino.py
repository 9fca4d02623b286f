"""Tests of SharedDINO: shared DINO encoder, one decoder branch per dataset (CPU, tiny)."""
from typing import Optional

import mmcv.ops.multi_scale_deform_attn as msda
import pytest
import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from fxmm.models.detectors.shared_dino import SharedDINO
from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import CXRDataSample
from fxmm.testing import get_tiny_model_cfg

DATASETS = dict(node21=1, chestxdet=3)
STAGE_CHANNELS = (32, 64, 128, 256)  # a Swin with embed_dims=32; strides 4, 8, 16, 32
STRIDES = (4, 8, 16, 32)



def tiny_cfg(**overrides) -> dict:
    """fxmm.testing's tiny SharedDINO (the demo's at unit-test size: width 256, 1 + 2 layers,
    4 points, 30 queries) for ``DATASETS``."""
    cfg = dict(get_tiny_model_cfg(with_loc=True).loc_head, dataset_classes=DATASETS)
    cfg.update(overrides)
    return cfg


def build(**overrides) -> SharedDINO:
    with DefaultScope.overwrite_default_scope('fxmm'):
        model = MODELS.build(tiny_cfg(**overrides))
    model.init_weights()
    return model


def random_feats(batch: int, size: int, seed: int = 0) -> list:
    """Backbone-like outputs for ``batch`` images of ``size`` px: (B, C_i, size/s_i, size/s_i)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size // s, size // s, generator=gen)
            for c, s in zip(STAGE_CHANNELS, STRIDES)]


def samples(boxes: list, labels: list, size: int, scale_factor=(1.0, 1.0),
            ori_size: Optional[int] = None) -> list:
    """Data samples of ``size`` px inputs with the given xyxy boxes (list of (N, 4) lists)."""
    out = []
    for img_boxes, img_labels in zip(boxes, labels):
        sample = CXRDataSample(metainfo=dict(
            dataset='node21', task='loc', img_shape=(size, size),
            batch_input_shape=(size, size), ori_shape=(ori_size or size, ori_size or size),
            scale_factor=scale_factor))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(img_boxes, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(img_labels, dtype=torch.long))
        out.append(sample)
    return out


LOSS_NAMES = ('loss_cls', 'loss_bbox', 'loss_iou')


def expected_loss_keys(num_layers: int = 2) -> set:
    keys = set(LOSS_NAMES)
    keys |= {f'enc_{k}' for k in LOSS_NAMES} | {f'dn_{k}' for k in LOSS_NAMES}
    for i in range(num_layers - 1):
        keys |= {f'd{i}.{k}' for k in LOSS_NAMES} | {f'd{i}.dn_{k}' for k in LOSS_NAMES}
    return keys


def total(losses: dict) -> torch.Tensor:
    return sum(v.sum() for v in losses.values())


def test_builds_and_runs_on_cpu_with_one_copy_of_the_shared_modules(monkeypatch):
    model = build()
    assert model.dataset_names == ['node21', 'chestxdet']
    assert all(p.device.type == 'cpu' for p in model.parameters())
    # the deformable attentions take mmcv's PyTorch path on CPU: 1 encoder + 2 decoder layers
    calls = []
    pytorch_msda = msda.multi_scale_deformable_attn_pytorch
    monkeypatch.setattr(msda, 'multi_scale_deformable_attn_pytorch',
                        lambda *args: calls.append(1) or pytorch_msda(*args))
    with torch.no_grad():
        model.eval().predict(random_feats(1, 64), samples([[]], [[]], 64), 'node21')
    assert len(calls) == 3
    # shared params counted once: duplicates would appear with remove_duplicate=False
    all_params = list(model.named_parameters(remove_duplicate=False))
    unique = {id(p): p for _, p in all_params}
    assert sum(p.numel() for _, p in all_params) == sum(p.numel() for p in unique.values())
    state = model.state_dict()
    ptrs = [t.data_ptr() for t in state.values() if t.numel()]
    assert len(ptrs) == len(set(ptrs))
    # the encoder/neck live once at the top; every branch has its own decoder and head
    assert sum(k.startswith('encoder.') for k in state) > 0
    assert not any('.encoder.' in k or '.neck.' in k for k in state if k.startswith('branches'))
    a, b = model.branches['node21'], model.branches['chestxdet']
    assert a.bbox_head.cls_branches[0].out_features == 1
    assert b.bbox_head.cls_branches[0].out_features == 3
    assert b.dn_query_generator.label_embedding.num_embeddings == 3
    assert len(a.bbox_head.cls_branches) == len(a.bbox_head.reg_branches) == 3  # 2 layers + enc
    assert a.decoder.layers[0].cross_attn is not b.decoder.layers[0].cross_attn
    # the shared modules it names are exactly the parameters outside the branches
    shared = {id(p) for n, p in all_params
              if any(n == m or n.startswith(m + '.') for m in model.shared_modules)}
    assert id(model.level_embed) in shared and id(a.query_embedding.weight) not in shared
    assert len(shared) == sum(not n.startswith('branches.') for n, _ in all_params)


def test_loss_is_finite_with_and_without_boxes():
    model = build().train()
    feats = random_feats(2, 64)
    with_boxes = samples([[[4, 6, 40, 30]], [[10, 10, 60, 50], [0, 30, 20, 62]]],
                         [[0], [2, 1]], 64)
    losses = model.loss(feats, with_boxes, 'chestxdet')
    assert set(losses) == expected_loss_keys()
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert losses['loss_bbox'] > 0 and losses['dn_loss_bbox'] > 0

    negatives = samples([[], []], [[], []], 64)
    losses = model.loss(feats, negatives, 'node21')
    assert set(losses) == expected_loss_keys()
    assert all(torch.isfinite(v).all() for v in losses.values())
    assert losses['loss_cls'] > 0  # every query is pushed towards background
    assert losses['loss_bbox'] == 0 and losses['dn_loss_bbox'] == 0
    total(losses).backward()


def test_every_parameter_of_the_trained_path_gets_a_gradient_and_no_other():
    """A backward on dataset A reaches every shared parameter and every parameter of A's
    branch with a non-zero gradient, and nothing of B's branch.

    Checked on the second step: at DINO's initialisation the last layer of each box branch and
    the deformable attentions' offset/weight projections are zero, so in the very first
    backward the box branches' hidden layers and ``level_embed`` (which only enters through
    those projections) get exactly-zero gradients; one AdamW step lifts that.
    """
    model = build().train()
    feats = random_feats(2, 64, seed=1)
    batch = samples([[[4, 6, 40, 30]], [[10, 10, 60, 50], [0, 30, 20, 62]]],
                    [[0], [2, 1]], 64)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    total(model.loss(feats, batch, 'chestxdet')).backward()
    optim.step()
    optim.zero_grad(set_to_none=True)
    total(model.loss(feats, batch, 'chestxdet')).backward()

    trained = [(n, p) for n, p in model.named_parameters() if not n.startswith('branches.')]
    trained += [(f'branches.chestxdet.{n}', p)
                for n, p in model.branches['chestxdet'].named_parameters()]
    no_grad = [n for n, p in trained if p.grad is None]
    zero_grad = [n for n, p in trained if p.grad is not None and not p.grad.abs().sum() > 0]
    assert not no_grad, f'parameters without gradient: {no_grad}'
    assert not zero_grad, f'parameters with an all-zero gradient: {zero_grad}'
    other = [n for n, p in model.branches['node21'].named_parameters() if p.grad is not None]
    assert not other, f'dataset node21 got gradients from a chestxdet batch: {other}'
    assert sum(p.numel() for _, p in trained) + sum(
        p.numel() for p in model.branches['node21'].parameters()) == sum(
            p.numel() for p in model.parameters())


def test_predict_returns_boxes_in_original_image_coordinates():
    model = build().eval()
    feats = random_feats(2, 64, seed=2)
    # the 64 px network input was resized from a 128 px original (scale_factor 0.5)
    batch = samples([[], []], [[], []], 64, scale_factor=(0.5, 0.5), ori_size=128)
    with torch.no_grad():
        scaled = model.predict(feats, batch, 'chestxdet')
        raw = model.predict(feats, batch, 'chestxdet', rescale=False)
    assert len(scaled) == 2
    for res, res_raw in zip(scaled, raw):
        assert res.bboxes.shape == (10, 4) and res.scores.shape == (10,)
        assert res.labels.shape == (10,) and res.labels.max() < 3 and res.labels.min() >= 0
        assert torch.all(res.scores[:-1] >= res.scores[1:])
        assert torch.allclose(res.bboxes, res_raw.bboxes * 2)
        assert res_raw.bboxes.min() >= 0 and res_raw.bboxes.max() <= 64
        assert torch.all(res.bboxes[:, 2:] >= res.bboxes[:, :2])
    bad = samples([[]], [[]], 64)
    bad[0].set_metainfo(dict(scale_factor=None))
    with pytest.raises(KeyError, match='scale_factor'):
        model.predict(random_feats(1, 64), bad, 'chestxdet')


def test_predict_datasets_runs_the_encoder_once_and_equals_predict_per_dataset(monkeypatch):
    model = build().eval()
    feats = random_feats(2, 64, seed=3)
    batch = samples([[], []], [[], []], 64)
    with torch.no_grad():
        single = {name: model.predict(feats, batch, name) for name in ('node21', 'chestxdet')}
        encodes = []
        encode = model.encode
        monkeypatch.setattr(model, 'encode', lambda *a: encodes.append(1) or encode(*a))
        joint = model.predict_datasets(feats, batch, ['node21', 'chestxdet'])
    assert len(encodes) == 1 and list(joint) == ['node21', 'chestxdet']
    for name, results in single.items():
        for res, res_joint in zip(results, joint[name]):
            assert torch.equal(res.bboxes, res_joint.bboxes)
            assert torch.equal(res.scores, res_joint.scores)
            assert torch.equal(res.labels, res_joint.labels)
    with pytest.raises(KeyError, match='rsna'):
        model.predict_datasets(feats, batch, ['node21', 'rsna'])


def test_query_states_on_the_students_anchors_repeat_its_pass():
    """``loss_and_query_states`` (the student) gives the matching queries' states and anchors;
    ``query_states`` on those anchors (the teacher) gives the same states, in eval mode and
    without the de-noising queries, which the matching queries cannot see; other anchors or
    another branch give other states."""
    model = build().train()
    feats = random_feats(2, 64, seed=3)
    batch = samples([[[4, 6, 40, 30]], [[10, 10, 60, 50]]], [[0], [0]], 64)
    losses, states, anchors = model.loss_and_query_states(feats, batch, 'node21')
    assert set(losses) == expected_loss_keys()
    assert states.requires_grad and states.shape == (2, 2, 30, 256)
    assert not anchors.requires_grad and anchors.shape == (2, 30, 4)
    assert 0 <= anchors.min() and anchors.max() <= 1
    model.eval()
    with torch.no_grad():
        again = model.query_states(feats, batch, 'node21', anchors)
        shuffled = model.query_states(feats, batch, 'node21', anchors.flip(1))
        other = model.query_states(feats, batch, 'chestxdet', anchors)
    torch.testing.assert_close(again, states.detach(), rtol=1e-4, atol=1e-5)
    assert (shuffled - again).abs().max() > 1e-3
    assert (other - again).abs().max() > 1e-3


def test_bad_inputs_raise_clear_errors():
    model = build().eval()
    feats = random_feats(1, 64)
    batch = samples([[]], [[]], 64)
    with pytest.raises(KeyError, match="'rsna'.*node21"):
        model.predict(feats, batch, 'rsna')
    with pytest.raises(ValueError, match=r'feats\[2\] must have shape \(B, 128, H, W\)'):
        model.predict(feats[:2] + [feats[3], feats[3]], batch, 'node21')
    with pytest.raises(ValueError, match='num_queries .* exceeds the 22 encoder tokens'):
        model.predict(random_feats(1, 32), samples([[]], [[]], 32), 'node21')
    with pytest.raises(ValueError, match='with_box_refine=True and as_two_stage=True'):
        build(as_two_stage=False)
    with pytest.raises(ValueError, match='max_per_img'):
        build(test_cfg=dict(max_per_img=100))
    with pytest.raises(ValueError, match='num_feats'):
        build(embed_dims=128)


def lesion_feats(boxes: list, size: int, seed: int) -> list:
    """Backbone-like maps in which the lesion region carries a fixed pattern over noise."""
    gen = torch.Generator().manual_seed(seed)
    feats = []
    for c, s in zip(STAGE_CHANNELS, STRIDES):
        n = size // s
        pattern = torch.randn(c, generator=gen)
        maps = 0.5 * torch.randn(len(boxes), c, n, n, generator=gen)
        centres = (torch.arange(n) + 0.5) * s
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            inside = (((centres >= y1) & (centres <= y2))[:, None]
                      & ((centres >= x1) & (centres <= x2))[None, :])
            maps[i] += inside * pattern[:, None, None]
        feats.append(maps)
    return feats


def test_overfits_two_images_with_one_lesion_each():
    """The tiny config learns: 80 AdamW steps on 2 images (128 px, one large box each).

    Observed over seeds 0-7: total loss ~30 -> ~7, top-box IoU 0.76-0.99 on both images.
    """
    size, gt = 128, [[20., 30., 70., 90.], [60., 16., 112., 60.]]
    feats = lesion_feats(gt, size, seed=0)
    batch = samples([[box] for box in gt], [[0], [0]], size)
    with torch.random.fork_rng():  # the de-noising queries draw from torch's global RNG
        torch.manual_seed(0)
        model = build(dataset_classes=dict(node21=1)).train()
        optim = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
        history = []
        for _ in range(80):
            loss = total(model.loss(feats, batch, 'node21'))
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optim.step()
            history.append(loss.item())
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    assert last < 0.5 * first, f'loss {first:.2f} -> {last:.2f}'
    with torch.no_grad():
        preds = model.eval().predict(feats, batch, 'node21')
    ious = [bbox_overlaps(p.bboxes[:1], torch.tensor([box])).item()
            for p, box in zip(preds, gt)]
    assert min(ious) > 0.5, f'IoU of the top box with the GT: {ious}'
