"""Training machinery: the cyclic train loop and fxmm's hooks."""
from .hooks import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403
