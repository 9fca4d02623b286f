"""Training machinery: the cyclic train loop and fxmm's hooks."""
from .hooks import *  # noqa: F401,F403
from .log_processor import PairLogProcessor
from .runner import *  # noqa: F401,F403

__all__ = ['PairLogProcessor']
