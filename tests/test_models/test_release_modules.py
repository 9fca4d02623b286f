"""The modules and options of the authors' released architectures at toy sizes:
TaskNormSwinTransformer, PSPFPNNeck, MultiDatasetSegHead(kernel_size), MultiDatasetClsHead(
projector_mlp). Their outputs on the full-size released layouts are compared with the authors'
forward in test_release_checkpoints.py."""
import pytest
import torch

from fxmm.apis import build_in_scope
from fxmm.registry import MODELS

ARCH = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])
CHANNELS = [16, 32, 64, 128]


def swin(type_, **kwargs):
    model = build_in_scope(dict(type=type_, arch=ARCH, window_size=4, drop_path_rate=0.,
                                out_indices=(0, 1, 2, 3), **kwargs),
                           'fxmm' if type_ == 'TaskNormSwinTransformer' else 'mmpretrain')
    model.eval()  # (mmpretrain's Swin.train returns None)
    return model


def randomise_norms(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if 'norm' in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (name.endswith('weight')))


def test_task_norm_swin_gives_each_task_its_stage_norms():
    ours = swin('TaskNormSwinTransformer', task_norms=dict(cls=(3, ), loc=(1, 2, 3)))
    assert {k for k in ours.state_dict() if 'task_norms' in k} == {
        f'task_norms.{t}.{i}.{p}' for t, stages in (('cls', (3, )), ('loc', (1, 2, 3)))
        for i in stages for p in ('weight', 'bias')}
    # mmpretrain's Swin with one norm per stage, and the same Swin without output norms
    normed, raw = swin('SwinTransformer'), swin('SwinTransformer', norm_cfg=None)
    randomise_norms(ours, 0)
    blocks = {k: v for k, v in ours.state_dict().items() if 'task_norms' not in k}
    raw.load_state_dict(blocks)
    loc_norms = {f'norm{i}.{p}': ours.state_dict()[f'task_norms.loc.{i}.{p}']
                 for i in (1, 2, 3) for p in ('weight', 'bias')}
    normed.load_state_dict(dict(blocks, **loc_norms), strict=False)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        feats = ours(x)
        for a, b in zip(feats, raw(x)):  # forward: the raw stage outputs
            assert torch.equal(a, b)
        loc, expected = ours.task_outputs(feats, 'loc'), normed(x)
        for i in (1, 2, 3):
            torch.testing.assert_close(loc[i], expected[i])
        assert torch.equal(loc[0], feats[0])
        seg = ours.task_outputs(feats, 'seg')  # a task not in task_norms: the raw outputs
        assert all(torch.equal(a, b) for a, b in zip(seg, feats))
        cls = ours.task_outputs(feats, 'cls')
        assert not torch.allclose(cls[3], loc[3])  # two norms of one stage
        assert torch.equal(cls[2], feats[2])


def test_task_norm_swin_refuses_unknown_tasks_and_stages():
    with pytest.raises(ValueError, match="unknown tasks \\['det'\\]"):
        swin('TaskNormSwinTransformer', task_norms=dict(det=(3, )))
    with pytest.raises(ValueError, match='stages \\[3\\], which are not in out_indices'):
        build_in_scope(dict(type='TaskNormSwinTransformer', arch=ARCH, window_size=4,
                            out_indices=(1, 2), task_norms=dict(loc=(1, 2, 3))), 'fxmm')


def test_foundation_x_paths_read_their_task_norms():
    model = build_in_scope(dict(
        type='FoundationX', datasets=dict(a=dict(cls_classes=['x'], seg_classes=['y'])),
        backbone=dict(type='TaskNormSwinTransformer', arch=ARCH, window_size=4,
                      out_indices=(0, 1, 2, 3), task_norms=dict(cls=(3, ), loc=(1, 2, 3))),
        cls_head=dict(type='MultiDatasetClsHead', in_channels=CHANNELS[-1]),
        seg_neck=dict(type='PSPFPNNeck', in_channels=CHANNELS, channels=CHANNELS[0]),
        seg_head=dict(type='MultiDatasetSegHead', in_channels=CHANNELS[0], kernel_size=3)),
        'fxmm').eval()
    randomise_norms(model.backbone, 1)
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(2, 3, 128, 128))
        norm = model.backbone.task_norms.cls['3']
        expected = norm(feats[3].permute(0, 2, 3, 1)).mean((1, 2))
        torch.testing.assert_close(model.pooled_features(feats), expected)
        assert torch.equal(model.loc_features(feats)[0], feats[0])
        assert not torch.allclose(model.loc_features(feats)[3], feats[3])
        # seg reads the raw maps
        assert torch.equal(model.seg_features(feats), model.seg_neck(feats))


def test_psp_fpn_neck_shapes_shared_smooth_conv_and_errors():
    neck = MODELS.build(dict(type='PSPFPNNeck', in_channels=CHANNELS, channels=16)).eval()
    # PSP branches of in_channels[-1] / 4, a full-width bottleneck, one smooth conv
    assert neck.psp[0][1].conv.weight.shape == (32, 128, 1, 1)
    assert neck.bottleneck.conv.weight.shape == (128, 128 + 4 * 32, 3, 3)
    assert neck.smooth_conv.weight.shape == (16, 16, 3, 3)
    assert [m.kernel_size for m in neck.lateral_convs] == [(1, 1)] * 3
    feats = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(CHANNELS)]
    with torch.no_grad():
        out = neck(feats)
    assert out.shape == (2, 16, 32, 32)
    with pytest.raises(ValueError, match='in_channels\\[0\\] == channels'):
        MODELS.build(dict(type='PSPFPNNeck', in_channels=CHANNELS, channels=8))
    with pytest.raises(ValueError, match='expects 4 feature maps'):
        neck(feats[1:])


def test_seg_head_kernel_size_and_cls_head_mlp_projector():
    head = MODELS.build(dict(type='MultiDatasetSegHead', in_channels=16, kernel_size=3,
                             dataset_classes=dict(a=2)))
    assert head.heads['a'][0].weight.shape == (2, 16, 3, 3)
    assert head(torch.randn(1, 16, 8, 8), 'a', (32, 32)).shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match='kernel_size must be odd'):
        MODELS.build(dict(type='MultiDatasetSegHead', in_channels=16, kernel_size=2,
                          dataset_classes=dict(a=2)))
    cls = MODELS.build(dict(type='MultiDatasetClsHead', in_channels=8, projector_dims=6,
                            projector_mlp=True, dataset_classes=dict(a=3)))
    # Ark's key names: projector.0 (Linear), projector.1 (ReLU), projector.2 (Linear)
    assert {k for k in cls.state_dict() if k.startswith('projector')} == {
        f'projector.{i}.{p}' for i in (0, 2) for p in ('weight', 'bias')}
    x = torch.randn(4, 8)
    p = cls.projector
    torch.testing.assert_close(cls.project(x), p[2](torch.relu(p[0](x))))
    with pytest.raises(ValueError, match='projector_mlp=True needs projector_dims'):
        MODELS.build(dict(type='MultiDatasetClsHead', in_channels=8, projector_mlp=True,
                          dataset_classes=dict(a=3)))
