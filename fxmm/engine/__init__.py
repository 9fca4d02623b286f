"""Training machinery: the cyclic train loop, fxmm's hooks, optimiser wrappers, atomic
checkpoint writes."""
from fxmm.utils import atomic_io  # noqa: F401  registers the 'atomic_local' file backend
from .hooks import *  # noqa: F401,F403
from .log_processor import PairLogProcessor
from .optim_constructor import StudentOptimWrapperConstructor
from .optim_wrappers import (AMP_VARIANTS, AnyDeviceAmpOptimWrapper, SafeAmpOptimWrapper,
                             SafeOptimWrapper)
from .runner import *  # noqa: F401,F403

__all__ = ['PairLogProcessor',
           'StudentOptimWrapperConstructor', 'AMP_VARIANTS', 'AnyDeviceAmpOptimWrapper',
           'SafeAmpOptimWrapper', 'SafeOptimWrapper']
