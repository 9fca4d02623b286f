"""Values that follow the training progress: the teacher's EMA momentum and the weight of
the student-teacher consistency loss (constant in Foundation X, cosine in Ark)."""
import math
from typing import Union

SCHEDULE_TYPES = ('constant', 'cosine')


class ProgressSchedule:
    """A value as a function of the training progress ``p`` in [0, 1] (the fraction of
    training iterations done).

    - ``constant``: ``value`` for every ``p``;
    - ``cosine``: ``end + (start - end) * (1 + cos(pi * p)) / 2``, i.e. ``start`` at
      ``p = 0``, ``(start + end) / 2`` at ``p = 0.5`` and ``end`` at ``p = 1`` - the
      ``cosine_scheduler`` of Ark (Ma et al., MICCAI 2023) and DINO self-distillation, whose
      step ``i`` of ``N`` is ``p = i / N``.

    Example:
        >>> ProgressSchedule('cosine', start=0.9, end=1.0)(0.5)  # Ark's EMA momentum
        0.95

    Args:
        type (str): ``'constant'`` or ``'cosine'``. Defaults to ``'constant'``.
        value (float, optional): the constant value (``type='constant'`` only).
        start (float, optional): the value at ``p = 0`` (``type='cosine'`` only).
        end (float, optional): the value at ``p = 1`` (``type='cosine'`` only).
    """

    def __init__(self, type: str = 'constant', value: float = None, start: float = None,
                 end: float = None):
        if type not in SCHEDULE_TYPES:
            raise ValueError(f'schedule type must be one of {SCHEDULE_TYPES}, got {type!r}')
        given = dict(value=value, start=start, end=end)
        needed = ('value', ) if type == 'constant' else ('start', 'end')
        wrong = sorted(k for k, v in given.items() if (v is None) == (k in needed))
        if wrong:
            raise ValueError(f'a {type!r} schedule takes exactly {needed}; got '
                             f'{ {k: v for k, v in given.items() if v is not None} }')
        self.type = type
        self.start = float(value if type == 'constant' else start)
        self.end = float(value if type == 'constant' else end)

    def __call__(self, progress: float) -> float:
        """The value at ``progress`` (clipped to [0, 1])."""
        if self.type == 'constant':
            return self.start
        p = min(max(float(progress), 0.), 1.)
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * p)) / 2

    def __repr__(self) -> str:
        if self.type == 'constant':
            return f'ProgressSchedule(constant {self.start})'
        return f'ProgressSchedule(cosine {self.start} -> {self.end})'


def build_schedule(cfg: Union[float, dict, ProgressSchedule], name: str,
                   low: float = 0., high: float = math.inf) -> ProgressSchedule:
    """Build a :class:`ProgressSchedule` from a number (constant) or a config dict, and
    check that its values lie in ``[low, high]``.

    Args:
        cfg (float | dict | ProgressSchedule): e.g. ``0.8`` or
            ``dict(type='cosine', start=0.9, end=1.0)``.
        name (str): what the value is, for error messages (e.g. ``'momentum'``).
        low (float): smallest allowed value. Defaults to 0.
        high (float): largest allowed value. Defaults to inf.

    Returns:
        ProgressSchedule: the schedule.
    """
    if isinstance(cfg, ProgressSchedule):
        schedule = cfg
    elif isinstance(cfg, (int, float)) and not isinstance(cfg, bool):
        schedule = ProgressSchedule('constant', value=cfg)
    elif isinstance(cfg, dict):
        try:
            schedule = ProgressSchedule(**cfg)
        except (TypeError, ValueError) as err:
            raise ValueError(f'{name}: bad schedule config {dict(cfg)}: {err}') from None
    else:
        raise TypeError(f'{name} must be a number or a schedule dict such as '
                        f"dict(type='cosine', start=0., end=0.5), got {cfg!r}")
    # a cosine schedule is monotone between its ends, so checking them is enough
    for value in (schedule.start, schedule.end):
        if not low <= value <= high:
            raise ValueError(f'{name} must lie in [{low}, {high}], got {schedule}')
    return schedule
