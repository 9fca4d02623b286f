"""Tests of TenCropTTA: the ten views sit where torchvision's TenCrop puts them (checked by
pixel value on crafted images, padding excluded), the scores are the exact mean over the
views, mirrored views of lateral classes are swapped back, other tasks pass through, and the
wrapper runs a real TeacherStudent (its teacher) and loads its checkpoints unchanged."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import load_state_dict
from mmengine.structures import LabelData

import fxmm.models.data_preprocessors.cxr_data_preprocessor  # noqa: F401  registers
import fxmm.models.foundation_x  # noqa: F401
import fxmm.models.heads.multi_cls_head  # noqa: F401
import fxmm.models.teacher_student  # noqa: F401
from fxmm.models.tta.ten_crop import FIVE_CROPS, TenCropTTA
from fxmm.registry import MODELS
from fxmm.testing._utils import demo_cxr_inputs, get_tiny_model_cfg

H, W = 10, 13        # crafted image size: odd margins test the centre's rounding
CROP = (6, 8)        # (h, w): margins 4 and 5 -> centre offset (2, round(2.5) = 2)


def coordinate_batch(batch_size=2, size=(H, W)):
    """A packed cls batch whose pixel (y, x) of image b holds ``1000 * b + 100 * y + x``
    (identity normalisation below keeps the values), so a crop names its own position."""
    data = demo_cxr_inputs(batch_size=batch_size, size=size, task='cls', dataset='demo')
    ys, xs = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing='ij')
    data['inputs'] = [(1000. * b + 100. * ys + xs)[None] for b in range(batch_size)]
    return data


class StubClassifier(BaseModel):
    """A cls "model" whose scores are known functions of the view it gets, shape (B, 3):
    [mean of the view's left half, mean of its right half, value of its top-left pixel]; it
    records every view tensor."""

    def __init__(self, pad_size_divisor=1):
        super().__init__(data_preprocessor=MODELS.build(dict(
            type='CXRDataPreprocessor', mean=(0., 0., 0.), std=(1., 1., 1.),
            pad_size_divisor=pad_size_divisor, pad_value=-1e4)))
        self.class_names = dict(demo=dict(cls_classes=['a', 'b', 'c']))
        self.seen = []
        self.test_step_calls = 0

    def test_step(self, data):
        self.test_step_calls += 1
        return super().test_step(data)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        assert mode == 'predict'
        self.seen.append(inputs.clone())
        half = inputs.shape[-1] // 2
        scores = torch.stack([inputs[:, 0, :, :half].mean(dim=(1, 2)),
                              inputs[:, 0, :, -half:].mean(dim=(1, 2)),
                              inputs[:, 0, 0, 0]], dim=1)
        for sample, score in zip(data_samples, scores):
            sample.pred_cls = LabelData(score=score)
        return data_samples


def expected_views(img, crop=CROP):
    """The ten views by explicit slicing of one (C, H, W) image: torchvision's five crops of
    the image, then of the mirrored image."""
    h, w = crop
    height, width = img.shape[-2:]
    top, left = int(round((height - h) / 2)), int(round((width - w) / 2))
    offsets = dict(top_left=(0, 0), top_right=(0, width - w), bottom_left=(height - h, 0),
                   bottom_right=(height - h, width - w), centre=(top, left))
    views = []
    for image in (img, img.flip(-1)):
        views += [image[..., y:y + h, x:x + w] for y, x in (offsets[n] for n in FIVE_CROPS)]
    return views


def test_views_are_the_ten_crops_at_their_pixel_positions():
    tta = TenCropTTA(StubClassifier(), crop_size=CROP)
    img = coordinate_batch(batch_size=1)['inputs'][0]  # (1, H, W), pixel = 100 y + x
    views = tta.views(img[None])
    assert tta.num_views == len(views) == 10
    assert all(v.shape == (1, 1, *CROP) for v in views)
    # top-left pixel and orientation of each view, written out by hand
    corners = [(v[0, 0, 0, 0].item(), v[0, 0, 0, 1].item()) for v in views]
    assert corners == [(0, 1), (5, 6), (400, 401), (405, 406), (202, 203),  # five crops
                       # the mirror's crops: top-left of the mirror = top-right of the image
                       # read right to left, ...
                       (12, 11), (7, 6), (412, 411), (407, 406), (210, 209)]
    for view, expected in zip(views, expected_views(img)):
        assert torch.equal(view[0], expected)
    # five crops without the mirror
    assert [v[0, 0, 0, 0].item() for v in TenCropTTA(StubClassifier(), CROP, flip=False)
            .views(img[None])] == [0, 5, 400, 405, 202]


def test_scores_are_the_exact_mean_over_the_views_without_padding():
    model = StubClassifier(pad_size_divisor=16)  # pads 10 x 13 to 16 x 16 with -1e4
    tta = TenCropTTA(model, crop_size=CROP)
    data = coordinate_batch(batch_size=2)
    out = tta.test_step(data)
    assert len(model.seen) == 10 and all(v.shape == (2, 3, *CROP) for v in model.seen)
    assert all(v.min() >= 0 for v in model.seen)  # no padding in any view
    for b, sample in enumerate(out):
        views = expected_views(data['inputs'][b])
        half = CROP[1] // 2
        expected = torch.tensor([
            sum(v[0, :, :half].mean() for v in views) / 10,
            sum(v[0, :, -half:].mean() for v in views) / 10,
            sum(v[0, 0, 0] for v in views) / 10])
        assert sample.pred_cls.score.shape == (3, )
        torch.testing.assert_close(sample.pred_cls.score, expected, rtol=0, atol=1e-3)
        # the batch's samples come back with their own metainfo and gt
        assert (sample.img_shape, sample.sample_idx) == ((H, W), b)
        assert torch.allclose(sample.gt_cls.label, data['data_samples'][b].gt_cls.label,
                              equal_nan=True)


def test_mirrored_views_of_lateral_classes_are_swapped_back():
    model = StubClassifier()
    model.class_names = dict(demo=dict(cls_classes=['left effusion', 'right effusion', 'c']))
    with pytest.raises(ValueError, match=r"\['left effusion', 'right effusion'\].*lr_pairs"):
        TenCropTTA(model, crop_size=CROP).test_step(coordinate_batch())
    tta = TenCropTTA(model, crop_size=CROP,
                     lr_pairs=dict(demo=[['left effusion', 'right effusion']]))
    data = coordinate_batch(batch_size=1)
    score = tta.test_step(data)[0].pred_cls.score
    # a mirrored view's right half is the left half of the image region it shows: after the
    # swap, class 0 ("left") averages what each view shows of its region's left half
    half = CROP[1] // 2
    views = expected_views(data['inputs'][0])
    left = [v[0, :, :half].mean() for v in views[:5]] + [v[0, :, -half:].mean()
                                                         for v in views[5:]]
    right = [v[0, :, -half:].mean() for v in views[:5]] + [v[0, :, :half].mean()
                                                           for v in views[5:]]
    expected = torch.stack([sum(left) / 10, sum(right) / 10])
    torch.testing.assert_close(score[:2], expected, rtol=0, atol=1e-3)
    unswapped = sum(v[0, :, :half].mean() for v in views) / 10
    assert abs(score[0] - unswapped) > 1  # the swap changed the result
    # without the mirror nothing is checked or swapped
    model.seen.clear()
    TenCropTTA(model, crop_size=CROP, flip=False).test_step(coordinate_batch())
    assert len(model.seen) == 5


def test_other_tasks_pass_through_and_bad_batches_are_refused():
    model = StubClassifier()
    tta = TenCropTTA(model, crop_size=CROP)
    seg = demo_cxr_inputs(batch_size=2, size=(H, W), task='seg', dataset='demo')
    tta.test_step(seg)
    # the stub's own test_step ran, once, on the whole images
    assert model.test_step_calls == 1 and len(model.seen) == 1
    assert model.seen[0].shape == (2, 3, H, W)
    with pytest.raises(ValueError, match='larger than the images'):
        TenCropTTA(model, crop_size=(H + 1, W)).test_step(coordinate_batch())
    mixed = coordinate_batch()
    mixed['data_samples'][1].set_metainfo(dict(img_shape=(H - 1, W)))
    with pytest.raises(ValueError, match='share one size'):
        tta.test_step(mixed)
    with pytest.raises(ValueError, match='crop_size'):
        TenCropTTA(model, crop_size=(0, 4))


def tiny_student_cfg():
    """The tiny FoundationX of fxmm.testing with an Ark-style projector."""
    cfg = get_tiny_model_cfg()
    cfg.cls_head.projector_dims = 24
    return cfg


def build_tiny_teacher_student():
    cfg = tiny_student_cfg()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        # built apart (no init_weights copy), the teacher differs from the student
        model = MODELS.build(dict(type='TeacherStudent', model=cfg, predict_on='teacher'))
    return model.eval()


def test_wraps_a_teacher_student_and_loads_its_checkpoints():
    model = build_tiny_teacher_student()
    data = demo_cxr_inputs(batch_size=2, size=40, task='cls', dataset='nih', num_cls=3)
    tta = MODELS.build(dict(type='TenCropTTA', module=model, crop_size=32)).eval()
    with torch.no_grad():
        out = tta.test_step(data)
        batch = model.data_preprocessor(demo_cxr_inputs(batch_size=2, size=40, task='cls',
                                                        dataset='nih', num_cls=3), False)
        crops = tta.views(batch['inputs'][..., :40, :40])  # padded to 64 by the preprocessor
        # the teacher's sigmoid scores of each view, averaged by hand
        pooled = [model.teacher.pooled_features(model.teacher.extract_feat(v)) for v in crops]
        manual = torch.stack([model.teacher.cls_head.predict(p, 'nih') for p in pooled]).mean(0)
        student = torch.stack([model.student.cls_head.predict(
            model.student.pooled_features(model.student.extract_feat(v)), 'nih')
            for v in crops]).mean(0)
    scores = torch.stack([s.pred_cls.score for s in out])
    assert scores.shape == (2, 3)
    torch.testing.assert_close(scores, manual)
    assert not torch.allclose(scores, student)

    # a TeacherStudent checkpoint loads into the wrapper as it is (mmengine unwraps
    # BaseTTAModel), so tools/test.py --tta takes the training checkpoints
    fresh = MODELS.build(dict(type='TenCropTTA', crop_size=32, module=dict(
        type='TeacherStudent', model=tiny_student_cfg(), predict_on='teacher')))
    load_state_dict(fresh, model.state_dict(), strict=True)
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.module.state_dict()[name], value), name

