"""The registry errors a user sees for a missing or mis-scoped ``type``."""
import pytest
from mmengine.registry import DefaultScope

from fxmm.registry import MODELS, TRANSFORMS
from fxmm.utils import register_all_modules


@pytest.fixture(autouse=True)
def fxmm_scope():
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


def test_borrowed_type_without_scope_names_the_scope():
    with pytest.raises(KeyError) as err:
        MODELS.build(dict(type='DINOHead', num_classes=2))
    msg = str(err.value)
    assert 'DINOHead' in msg
    assert "type='mmdet.DINOHead'" in msg


def test_typo_suggests_close_match():
    with pytest.raises(KeyError) as err:
        TRANSFORMS.build(dict(type='LoadImageFromFil'))
    assert "did you mean" in str(err.value)
    assert 'LoadImageFromFile' in str(err.value)


def test_unknown_own_module_points_to_custom_imports():
    with pytest.raises(KeyError) as err:
        MODELS.build(dict(type='MyVeryOwnHeadXYZ'))
    assert 'custom_imports' in str(err.value)


def test_scoped_type_builds():
    head = MODELS.build(dict(type='mmpretrain.LinearClsHead', num_classes=3, in_channels=8))
    assert head.fc.out_features == 3
