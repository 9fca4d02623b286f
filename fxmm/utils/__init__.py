"""The ground floor: helpers that every part of fxmm (and its tools and converters) may use and
that import nothing else of fxmm - atomic writes, training-progress schedules, checkpoint
reading and state-dict key mapping, mmcv fixes, the launch helpers of the tools - plus
:func:`register_all_modules`, the entry point of scripts and tests, which imports every
sub-package when it is called."""
from .setup_env import register_all_modules

__all__ = ['register_all_modules']
