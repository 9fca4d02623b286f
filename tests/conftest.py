"""Shared test set-up: every test runs with fxmm registered and as the default scope.

Some OpenMMLab modules build their sub-modules through the *current* default scope; a test
that leaves another scope current must not break the next one. The ``released_*`` fixtures
build random-weight checkpoints with the exact layouts of the authors' released files
(tests/data/released_checkpoints/), and that Foundation X file converted once for the session.
"""
import importlib.util
import json
import os

import pytest
import torch
from mmengine.registry import DefaultScope

from fxmm.utils import register_all_modules
from tool_scripts import load_converter

register_all_modules(init_default_scope=False)
# One thread for torch in the tests and in the tools they start: on a 2-core machine with
# another process running, tests/test_configs/test_foundation_x_config.py (Swin-B) took 37 s
# on one thread and 248 s on two, whose OpenMP threads wait for each other.
os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = '1'
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fxmm_default_scope():
    with DefaultScope.overwrite_default_scope('fxmm'):
        yield


# ------------------------------------------------ the authors' released checkpoint layouts
RELEASED = os.path.join(os.path.dirname(__file__), 'data', 'released_checkpoints')
FX_RELEASE_CONFIG = os.path.join(os.path.dirname(__file__), '..', 'configs',
                                 'foundation_x_release.py')


def _make_ckpt():
    """The module of tests/data/released_checkpoints/make_ckpt.py."""
    spec = importlib.util.spec_from_file_location('make_ckpt',
                                                  os.path.join(RELEASED, 'make_ckpt.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def released_layout(which: str) -> dict:
    """The layout JSON of a released checkpoint: ``'fx'`` or ``'ark6'``."""
    with open(os.path.join(RELEASED, f'{which}_layout.json')) as f:
        return json.load(f)


@pytest.fixture(scope='session')
def released_fx():
    """(student, teacher): the two state dicts of a random-weight file with the exact layout
    of the released Foundation X checkpoint (``make_ckpt.py fx``, seed 0: the ``model`` and
    ``teacher_model`` entries), 2340 keys each, aliases shared; ~1.4 GB, built once per
    session (~20 s)."""
    layout, make_ckpt = released_layout('fx'), _make_ckpt()
    return tuple(make_ckpt.state_dict(layout['keys'], layout['aliases'], seed)
                 for seed in (0, 1))


@pytest.fixture(scope='session')
def released_fx_file(released_fx, tmp_path_factory):
    """The path of that checkpoint as ``make_ckpt.py fx`` writes it (``model``,
    ``teacher_model``, ``optimizer``, ``epoch``)."""
    path = str(tmp_path_factory.mktemp('released') / 'FX.pth')
    student, teacher = released_fx
    optimizer = dict(state={}, param_groups=[  # make_ckpt.py's 4 (empty) AdamW groups
        dict(lr=lr, weight_decay=1e-4, params=[]) for lr in (1e-5, 1e-4, 1e-4, 1e-4)])
    torch.save(dict(model=student, teacher_model=teacher, optimizer=optimizer, epoch=380), path)
    return path


@pytest.fixture(scope='session')
def released_ark6():
    """The flat state dict of a random-weight file with the layout of the released Ark-6
    teacher (``make_ckpt.py ark6``, seed 0): timm Swin-B, the MLP projector, 6 heads."""
    layout = released_layout('ark6')
    return _make_ckpt().state_dict(layout['keys'], [], 0)


@pytest.fixture(scope='session')
def released_fx_converted(released_fx):
    """(converted, reports, model_cfg): both copies of ``released_fx`` converted once by
    ``foundation_x_to_fxmm.convert`` into the FoundationX of configs/foundation_x_release.py
    (a TeacherStudent state dict, ``student.`` / ``teacher.`` keys), the per-copy
    :class:`KeyReport` s, and that FoundationX config. Shared: never change them in place."""
    from mmengine.config import Config

    from fxmm.apis import foundation_x_cfg
    model_cfg = foundation_x_cfg(Config.fromfile(FX_RELEASE_CONFIG))
    student, teacher = released_fx
    converted, reports = load_converter('foundation_x_to_fxmm').convert(
        dict(model=student, teacher_model=teacher), model_cfg)
    return converted, reports, model_cfg
