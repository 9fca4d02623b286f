"""Shared test set-up: every test runs with fxmm registered and as the default scope.

Some OpenMMLab modules build their sub-modules through the *current* default scope; a test
that leaves another scope current must not break the next one.
"""
import pytest
from mmengine.registry import DefaultScope

from fxmm.utils import register_all_modules

register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def fxmm_default_scope():
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield
