"""Helpers for tests: tiny model configs and packed demo inputs."""
from ._utils import demo_cxr_inputs, get_tiny_model_cfg

__all__ = ['demo_cxr_inputs', 'get_tiny_model_cfg']
