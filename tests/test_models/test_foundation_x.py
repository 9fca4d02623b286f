"""Tests of FoundationX: routing of one (dataset, task) pair per batch, gradients, prediction."""
import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, LabelData, PixelData

import fxmm.models.data_preprocessors.cxr_data_preprocessor  # noqa: F401  registers
import fxmm.models.foundation_x  # noqa: F401
import fxmm.models.heads.multi_cls_head  # noqa: F401
import fxmm.models.heads.multi_seg_head  # noqa: F401
import fxmm.models.necks.shared_upernet  # noqa: F401
from fxmm.models.losses import MaskedBCEWithLogitsLoss
from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import CXRDataSample
from fxmm.testing._utils import demo_cxr_inputs, get_tiny_model_cfg

SIZE, ORI_SIZE = 64, (100, 90)
NUM_CLASSES = dict(nih=dict(num_cls=3), siim=dict(num_cls=1, num_det=1, num_seg=1),
                   jsrt=dict(num_seg=3), tbx=dict(num_det=2))


@pytest.fixture(autouse=True)
def fxmm_default_scope():
    """Build in fxmm's scope, as a config with ``default_scope = 'fxmm'`` does."""
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


def build(cfg=None):
    """Build and initialise a FoundationX with a local, fixed RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(cfg or get_tiny_model_cfg())
        model.init_weights()
    return model


def batch(model, task: str, dataset: str, seed: int = 0, batch_size: int = 2) -> dict:
    """A preprocessed batch of one pair, images resized from ORI_SIZE to SIZE."""
    data = demo_cxr_inputs(batch_size, SIZE, task, dataset, seed=seed, ori_size=ORI_SIZE,
                           **NUM_CLASSES[dataset])
    return model.data_preprocessor(data, training=True)


def grads_of(module_or_params):
    """{name: grad} of a module's named parameters."""
    return {n: p.grad for n, p in module_or_params.named_parameters()}


def assert_nonzero(grads: dict, what: str):
    missing = [n for n, g in grads.items() if g is None]
    zero = [n for n, g in grads.items() if g is not None and not g.abs().sum() > 0]
    assert not missing and not zero, f'{what}: no grad {missing}, zero grad {zero}'


def assert_none(grads: dict, what: str):
    touched = [n for n, g in grads.items() if g is not None]
    assert not touched, f'{what} got gradients: {touched}'


def swin_param_count(embed_dims, depths, num_heads, window=7, patch=4, in_chans=3):
    """Parameters of mmpretrain's SwinTransformer with out_indices (0, 1, 2, 3), by formula.

    Per block at width d with h heads: 2 LayerNorms (4d), qkv (3d^2 + 3d), proj (d^2 + d),
    relative position bias table ((2w - 1)^2 h), MLP d -> 4d -> d (8d^2 + 5d), i.e.
    12 d^2 + 13 d + (2w - 1)^2 h. Patch embedding: conv (in * p^2 * C + C) + LayerNorm (2C).
    Patch merging after stages 1-3: LayerNorm(4d) + Linear(4d, 2d, no bias) = 8d + 8d^2.
    One output LayerNorm per stage: 2d.
    """
    total = in_chans * patch * patch * embed_dims + embed_dims + 2 * embed_dims
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        d = embed_dims * 2**i
        total += depth * (12 * d * d + 13 * d + (2 * window - 1)**2 * heads)
        total += 2 * d
        if i < len(depths) - 1:
            total += 8 * d + 8 * d * d
    return total


def test_swin_b_backbone_builds_with_the_hand_counted_parameters():
    backbone = MODELS.build(dict(type='mmpretrain.SwinTransformer', arch='base', img_size=224,
                                 out_indices=(0, 1, 2, 3)))
    expected = swin_param_count(128, (2, 2, 18, 2), (4, 8, 16, 32))
    assert expected == 86_745_016  # ~86.7M: Swin-B without classifier, 4 output norms
    assert sum(p.numel() for p in backbone.parameters()) == expected
    assert backbone.num_features == [128, 256, 512, 1024]


def test_heads_get_their_class_counts_from_the_dataset_lists():
    model = build()
    assert model.task_datasets == dict(cls=['nih', 'siim'], loc=[], seg=['siim', 'jsrt'])
    assert model.cls_head.dataset_classes == dict(nih=3, siim=1)
    assert model.seg_head.dataset_classes == dict(siim=1, jsrt=3)
    assert not model.with_loc and model.with_cls and model.with_seg
    feats = model.extract_feat(torch.randn(2, 3, SIZE, SIZE))
    # mmpretrain's Swin returns channels-first maps, strides 4..32
    assert [tuple(f.shape) for f in feats] == [(2, 32, 16, 16), (2, 64, 8, 8), (2, 128, 4, 4),
                                              (2, 256, 2, 2)]
    assert model.pooled_features(feats).shape == (2, 256)
    assert model.seg_features(feats).shape == (2, 16, 16, 16)


@pytest.mark.parametrize('change, error', [
    (lambda c: c.cls_head.update(dataset_classes=dict(nih=3)), 'do not set dataset_classes'),
    (lambda c: c.update(seg_neck=None, seg_head=None), r"\['siim', 'jsrt'\] have seg_classes"),
    (lambda c: c.update(seg_head=None), 'seg_neck and seg_head go together'),
    (lambda c: c.datasets.update({'bad.name': dict(cls_classes=['a'])}), "'bad.name'"),
    (lambda c: c.datasets.nih.update(box_classes=['a']), r"unknown keys \['box_classes'\]"),
    (lambda c: c.datasets.update(empty=dict(cls_classes=[])), "'empty'.* no classes"),
])
def test_bad_configs_raise_clear_errors(change, error):
    cfg = get_tiny_model_cfg()
    change(cfg)
    with pytest.raises(ValueError, match=error):
        MODELS.build(cfg)


@pytest.mark.parametrize('change, error', [
    (lambda c: c.datasets.siim.update(tasks=['loc']), r"'siim'.* 'loc' in `tasks` but no "
                                                      r"det_classes"),
    (lambda c: c.datasets.siim.update(tasks=['segmentation']), "unknown task 'segmentation'"),
    (lambda c: c.datasets.siim.update(tasks='seg'), r"siim'\]\.tasks must be a list"),
    (lambda c: c.datasets.jsrt.update(tasks=[]), "'jsrt'.* no classes"),
])
def test_bad_tasks_raise_clear_errors(change, error):
    cfg = get_tiny_model_cfg()
    change(cfg)
    with pytest.raises(ValueError, match=error):
        MODELS.build(cfg)


def test_a_task_without_datasets_gets_no_modules_and_tasks_picks_the_heads():
    # siim trains seg only: its cls classes are left out; jsrt and siim keep the seg path
    cfg = get_tiny_model_cfg()
    cfg.datasets.siim.tasks = ['seg']
    model = MODELS.build(cfg)
    assert model.task_datasets == dict(cls=['nih'], loc=[], seg=['siim', 'jsrt'])
    assert model.class_names['siim'] == dict(cls_classes=[], det_classes=[],
                                             seg_classes=['Pneumothorax'])
    assert model.cls_head.dataset_classes == dict(nih=3)
    # a seg-only model: the configured cls head is not built, nor anything of it
    seg_only = get_tiny_model_cfg()
    del seg_only.datasets['nih']
    seg_only.datasets.siim.tasks = ['seg']
    model = MODELS.build(seg_only)
    assert model.cls_head is None and model.loc_head is None and not model.with_cls
    assert model.seg_neck is not None and model.seg_head.dataset_classes == dict(siim=1, jsrt=3)
    assert not any(name.startswith('cls_head') for name in model.state_dict())
    # a cls-only model: neither the seg decoder nor the seg heads
    cls_only = get_tiny_model_cfg()
    del cls_only.datasets['jsrt']
    cls_only.datasets.siim.tasks = ['cls']
    model = MODELS.build(cls_only)
    assert model.seg_neck is None and model.seg_head is None and model.with_cls
    assert model.shared_modules('cls') == ('backbone', )
    with pytest.raises(ValueError, match='FoundationX has no seg path: no dataset has '
                                         'seg_classes'):
        model.shared_modules('seg')


def test_shared_modules_name_the_parts_every_dataset_of_a_task_uses():
    model = MODELS.build(get_tiny_model_cfg(with_loc=True))
    assert model.shared_modules('cls') == ('backbone', )
    assert model.shared_modules('loc') == ('backbone', 'loc_head.neck', 'loc_head.level_embed',
                                           'loc_head.encoder')
    assert model.shared_modules('seg') == ('backbone', 'seg_neck')
    # everything a task's path runs is its shared modules plus one head per dataset
    names = [name for name, _ in model.named_parameters()]
    loc_path = [n for n in names if n.startswith(('backbone.', 'loc_head.'))]
    shared = [n for n in loc_path
              if any(n == m or n.startswith(m + '.') for m in model.shared_modules('loc'))]
    assert sorted(set(loc_path) - set(shared)) == sorted(
        n for n in names if n.startswith(('loc_head.branches.siim.', 'loc_head.branches.tbx.')))
    with pytest.raises(ValueError, match="unknown task 'det'"):
        model.shared_modules('det')


def test_prior_prob_starts_the_sigmoid_heads_at_the_prior():
    cfg = get_tiny_model_cfg()
    cfg.cls_head.prior_prob = 0.3
    cfg.seg_head.prior_prob = dict(siim=0.02)
    model, default = build(cfg), build()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(2, 3, SIZE, SIZE))
        pooled, seg_feat = model.pooled_features(feats), model.seg_features(feats)
        # on a zero feature the outputs are the prior itself: the bias is log(p / (1 - p))
        assert model.cls_head.heads['nih'].bias.tolist() == pytest.approx([-0.847298] * 3,
                                                                          abs=1e-6)
        zero_cls = model.cls_head.predict(torch.zeros(1, 256), 'nih')
        assert torch.allclose(zero_cls, torch.full((1, 3), 0.3), rtol=0, atol=1e-6)
        zero_seg = model.seg_head(torch.zeros(1, 16, 16, 16), 'siim', (SIZE, SIZE)).sigmoid()
        assert torch.allclose(zero_seg, torch.full((1, 1, SIZE, SIZE), 0.02), rtol=0, atol=1e-6)
        # on real features they stay near it (Normal(0, 0.01) weights), where the default
        # init starts anywhere around 0.5
        for dataset in ('nih', 'siim'):
            scores = model.cls_head.predict(pooled, dataset)
            assert scores.min() > 0.2 and scores.max() < 0.4
        ptx = model.seg_head(seg_feat, 'siim', (SIZE, SIZE)).sigmoid()
        assert ptx.min() > 0.015 and ptx.max() < 0.027
        assert default.seg_head(seg_feat, 'siim', (SIZE, SIZE)).sigmoid().mean() > 0.2
    # datasets without a prior keep the default initialisation
    assert torch.equal(model.seg_head.heads['jsrt'][-1].weight,
                       default.seg_head.heads['jsrt'][-1].weight)


def test_prior_prob_of_a_dataset_the_head_lacks_is_skipped_with_a_warning(monkeypatch):
    import fxmm.models.heads.prior_init as prior_init
    logged = []
    monkeypatch.setattr(prior_init, 'print_log', lambda msg, **kw: logged.append((msg, kw)))
    cfg = get_tiny_model_cfg()
    # nih has no masks; phantom_ptx is no dataset of this model (a config derived with fewer)
    cfg.seg_head.prior_prob = dict(nih=0.1, phantom_ptx=0.02, siim=0.02)
    model = build(cfg)
    [(msg, kw)] = logged
    assert msg.startswith("MultiDatasetSegHead: prior_prob names datasets ['nih', "
                          "'phantom_ptx'] the head does not have (skipped)")
    assert kw['level'] == logging.WARNING
    # siim's prior is applied all the same: its bias starts at log(0.02 / 0.98)
    assert model.seg_head.heads['siim'][-1].bias.tolist() == pytest.approx([-3.891820],
                                                                           abs=1e-6)


@pytest.mark.parametrize('head, prior, error', [
    ('cls_head', 1.0, r"MultiDatasetClsHead: prior_prob of 'nih' must be a probability in "
                      r"\(0, 1\), got 1.0"),
    ('seg_head', dict(jsrt=0.), r"prior_prob of 'jsrt' must be a probability"),
])
def test_bad_prior_prob_raises_clear_errors(head, prior, error):
    cfg = get_tiny_model_cfg()
    cfg[head].prior_prob = prior
    with pytest.raises(ValueError, match=error):
        MODELS.build(cfg)


def test_masked_bce_ignores_nan_and_uncertain_targets():
    logits = torch.tensor([[0., 2.], [-1., 3.]], requires_grad=True)
    target = torch.tensor([[1., float('nan')], [-1., 0.]])
    loss = MaskedBCEWithLogitsLoss(loss_weight=2.)(logits, target)
    # annotated entries only: -log(sigmoid(0)) = log 2, -log(1 - sigmoid(3)) = log(1 + e^3)
    assert loss.item() == pytest.approx(2 * (0.693147 + 3.048587) / 2, rel=1e-5)
    loss.backward()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 0] == 0
    assert logits.grad[0, 0] != 0 and logits.grad[1, 1] != 0
    empty = MaskedBCEWithLogitsLoss()(logits, torch.full((2, 2), float('nan')))
    assert empty.item() == 0 and empty.requires_grad


def test_cls_batch_trains_only_the_backbone_and_its_dataset_head():
    model = build().train()
    losses = model(**batch(model, 'cls', 'nih'), mode='loss')
    assert set(losses) == {'nih.cls.loss_cls'}
    sum(losses.values()).backward()
    backbone = grads_of(model.backbone)
    # the cls path reads the last stage only: the output norms of stages 1-3 stay unused
    unused = {n: g for n, g in backbone.items() if n.split('.')[0] in ('norm0', 'norm1', 'norm2')}
    assert_nonzero({n: g for n, g in backbone.items() if n not in unused}, 'backbone')
    assert_nonzero(grads_of(model.cls_head.heads['nih']), 'nih cls head')
    assert_none(unused, 'norms of stages 1-3')
    assert_none(grads_of(model.cls_head.heads['siim']), 'siim cls head')
    assert_none(grads_of(model.seg_neck), 'seg neck')
    assert_none(grads_of(model.seg_head), 'seg heads')


def test_seg_batch_trains_the_backbone_shared_upernet_and_its_dataset_head():
    model = build().train()
    losses = model(**batch(model, 'seg', 'jsrt'), mode='loss')
    assert set(losses) == {'jsrt.seg.loss_dice', 'jsrt.seg.loss_bce'}  # the demo's losses
    assert 0 < losses['jsrt.seg.loss_dice'] < 1
    assert losses['jsrt.seg.loss_bce'] > 0
    sum(losses.values()).backward()
    assert_nonzero(grads_of(model.backbone), 'backbone')
    assert_nonzero(grads_of(model.seg_neck), 'seg neck')
    assert_nonzero(grads_of(model.seg_head.heads['jsrt']), 'jsrt seg head')
    assert_none(grads_of(model.seg_head.heads['siim']), 'siim seg head')
    assert_none(grads_of(model.cls_head), 'cls heads')


def test_train_step_under_adamw_moves_only_the_active_path():
    model = build().train()
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05))
    before = copy.deepcopy(model.state_dict())
    data = demo_cxr_inputs(2, SIZE, 'cls', 'siim', seed=4, num_cls=1)
    log_vars = model.train_step(data, optim)
    assert set(log_vars) == {'loss', 'siim.cls.loss_cls'}
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {'cls_head.heads.siim.weight', 'backbone.stages.3.blocks.1.ffn.layers.1.weight',
            'backbone.patch_embed.projection.weight'} <= changed
    assert not any(k.startswith(('cls_head.heads.nih', 'seg_neck', 'seg_head')) for k in changed)


def test_predict_task_writes_outputs_at_the_original_size():
    model = build().eval()
    cls_data = batch(model, 'cls', 'nih', seed=1)
    seg_data = batch(model, 'seg', 'jsrt', seed=2)
    with torch.no_grad():
        cls_out = model(**cls_data, mode='predict')
        seg_out = model(**seg_data, mode='predict')
        cls_logits = model(cls_data['inputs'], mode='tensor')['nih.cls']
        seg_logits = model(seg_data['inputs'], mode='tensor')['jsrt.seg']
    for i, sample in enumerate(cls_out):
        assert isinstance(sample.pred_cls, LabelData) and 'pred_seg_masks' not in sample
        assert torch.allclose(sample.pred_cls.score, cls_logits[i].sigmoid())
    expected = F.interpolate(seg_logits, size=ORI_SIZE, mode='bilinear').sigmoid()
    for i, sample in enumerate(seg_out):
        masks = sample.pred_seg_masks
        assert masks.data.shape == masks.score.shape == (3, ) + ORI_SIZE
        assert masks.data.dtype == torch.bool
        assert torch.allclose(masks.score, expected[i], atol=1e-6)
        assert torch.equal(masks.data, masks.score > 0.5)
        assert 'pred_cls' not in sample


def test_predict_all_runs_every_head_on_one_backbone_pass():
    model = build().eval()
    calls = []
    model.backbone.register_forward_hook(lambda *args: calls.append(1))
    # any image: no dataset/task in the metainfo
    samples = [CXRDataSample(metainfo=dict(img_shape=(SIZE, SIZE), ori_shape=ORI_SIZE,
                                           scale_factor=(0.71, 0.64))) for _ in range(2)]
    images = demo_cxr_inputs(2, SIZE, seed=5)['inputs']
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples))
    with torch.no_grad():
        out = model(**data, mode='predict', heads='all')
    assert len(calls) == 1
    for sample in out:
        preds = sample.all_preds
        assert {d: set(p) for d, p in preds.items()} == dict(nih={'cls'}, siim={'cls', 'seg'},
                                                            jsrt={'seg'})
        assert preds['nih']['cls'].shape == (3, ) and preds['siim']['cls'].shape == (1, )
        assert isinstance(preds['jsrt']['seg'], PixelData)
        assert preds['jsrt']['seg'].data.shape == (3, ) + ORI_SIZE
        assert preds['siim']['seg'].score.shape == (1, ) + ORI_SIZE
    # the same numbers as the per-pair prediction
    pair_samples = copy.deepcopy(data['data_samples'])
    for sample in pair_samples:
        sample.set_metainfo(dict(dataset='jsrt', task='seg'))
    with torch.no_grad():
        single = model.predict(data['inputs'], pair_samples)
    for one, every in zip(single, out):
        assert torch.allclose(one.pred_seg_masks.score, every.all_preds['jsrt']['seg'].score)


def test_batches_the_model_cannot_route_raise_clear_errors():
    model = build()
    data = batch(model, 'cls', 'nih')
    data['data_samples'][0].set_metainfo(dict(dataset='jsrt'))
    data['data_samples'][1].set_metainfo(dict(dataset='jsrt'))
    with pytest.raises(ValueError, match=r"no cls head for dataset 'jsrt'.*\['nih', 'siim'\]"):
        model(**data, mode='loss')
    no_pair = [CXRDataSample(metainfo=dict(img_shape=(SIZE, SIZE)))]
    with pytest.raises(ValueError, match="need metainfo 'dataset' and 'task'"):
        model.predict(torch.zeros(1, 3, SIZE, SIZE), no_pair)
    with pytest.raises(ValueError, match="heads must be one of"):
        model.predict(torch.zeros(1, 3, SIZE, SIZE), no_pair, heads='cls')
    with pytest.raises(ValueError, match="invalid mode 'train'"):
        model(torch.zeros(1, 3, SIZE, SIZE), mode='train')


def test_loc_batches_route_to_the_shared_dino_branch_of_their_dataset():
    model = build(get_tiny_model_cfg(with_loc=True)).train()
    assert model.loc_head.dataset_names == ['siim', 'tbx']
    with torch.random.fork_rng():  # DINO's de-noising queries draw from the global RNG
        torch.manual_seed(0)
        losses = model(**batch(model, 'loc', 'tbx'), mode='loss')
    assert {'tbx.loc.loss_cls', 'tbx.loc.loss_bbox', 'tbx.loc.enc_loss_iou',
            'tbx.loc.dn_loss_bbox', 'tbx.loc.d0.loss_cls'} <= set(losses)
    assert all(k.startswith('tbx.loc.') and torch.isfinite(v) for k, v in losses.items())
    sum(losses.values()).backward()
    assert any(g is not None and g.abs().sum() > 0 for g in grads_of(model.backbone).values())
    assert_none(grads_of(model.loc_head.branches['siim']), 'siim DINO branch')
    assert_none(grads_of(model.cls_head), 'cls heads')
    assert_none(grads_of(model.seg_neck), 'seg neck')
    assert_none(grads_of(model.seg_head), 'seg heads')

    model.eval()
    data = batch(model, 'loc', 'siim', seed=3)
    with torch.no_grad():
        task_out = model(**data, mode='predict')
        all_out = model(**copy.deepcopy(data), mode='predict', heads='all')
        in_input_pixels = model.loc_head.predict(
            model.extract_feat(data['inputs']), data['data_samples'], 'siim', rescale=False)
    # boxes in the 100 x 90 original: input boxes divided by scale_factor (w, h)
    scale = torch.tensor([SIZE / ORI_SIZE[1], SIZE / ORI_SIZE[0]] * 2)
    for one, every, raw in zip(task_out, all_out, in_input_pixels):
        boxes = one.pred_instances
        assert isinstance(boxes, InstanceData) and boxes.bboxes.shape == (10, 4)
        assert boxes.labels.max() < 1
        assert torch.allclose(boxes.bboxes, raw.bboxes / scale, atol=1e-4)
        assert set(every.all_preds['siim']) == {'cls', 'loc', 'seg'}
        assert set(every.all_preds['tbx']) == {'loc'}
        assert torch.allclose(every.all_preds['siim']['loc'].bboxes, boxes.bboxes)
