"""Training machinery: the cyclic train loop, fxmm's hooks, optimiser wrappers, atomic
checkpoint writes."""
from .atomic_backend import AtomicLocalBackend, atomic_write_bytes
from .hooks import *  # noqa: F401,F403
from .log_processor import PairLogProcessor
from .optim_constructor import StudentOptimWrapperConstructor
from .optim_wrappers import (AMP_VARIANTS, AnyDeviceAmpOptimWrapper, SafeAmpOptimWrapper,
                             SafeOptimWrapper)
from .runner import *  # noqa: F401,F403

__all__ = ['AtomicLocalBackend', 'atomic_write_bytes', 'PairLogProcessor',
           'StudentOptimWrapperConstructor', 'AMP_VARIANTS', 'AnyDeviceAmpOptimWrapper',
           'SafeAmpOptimWrapper', 'SafeOptimWrapper']
