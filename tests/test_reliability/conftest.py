"""Helpers shared by the reliability tests."""
import importlib.util
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def load_tool():
    """Import ``tools/<name>.py`` as a module (``tools/`` is not a package)."""

    def load(name: str):
        tools = osp.join(ROOT, 'tools')
        spec = importlib.util.spec_from_file_location(f'fxmm_tool_{name}',
                                                      osp.join(tools, f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, tools)  # tools/test.py imports train.py
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(tools)
        return module

    return load
