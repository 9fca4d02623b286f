"""Helpers for tests: tiny model configs, packed demo inputs, running the tools."""
from ._utils import demo_cxr_inputs, get_tiny_model_cfg
from .cli import run_python

__all__ = ['demo_cxr_inputs', 'get_tiny_model_cfg', 'run_python']
