"""Shared test set-up: every test runs with fxmm registered and as the default scope.

Some OpenMMLab modules build their sub-modules through the *current* default scope; a test
that leaves another scope current must not break the next one.
"""
import pytest
import torch
from mmengine.registry import DefaultScope

from fxmm.utils import register_all_modules

register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def fxmm_default_scope():
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


@pytest.fixture
def one_thread():
    """One torch thread for the test (restored after it). Tiny ops: one thread is as fast on
    an idle CPU and far faster on a shared, loaded one. Use it in a module with
    ``pytestmark = pytest.mark.usefixtures('one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
