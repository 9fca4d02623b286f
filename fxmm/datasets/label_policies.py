"""Policies for uncertain (-1) and missing (nan) image-level labels.

The CheXpert labeller marks findings as 1 (positive), 0 (negative), -1 (uncertain) or blank
(not mentioned); annotation files keep these as 1 / 0 / -1 / null, and fxmm's arrays use nan for
null. A policy says what -1 becomes:

- ``'ignore'``: stays -1; losses and metrics skip -1 and nan.
- ``'ones'``: U-ones, -1 -> 1 (used for MIMIC-CXR).
- ``'zeros'``: U-zeros, -1 -> 0.
- ``'lsr'``: label-smoothing regularisation (Pham et al., "Interpreting chest X-rays via CNNs
  that exploit hierarchical disease dependencies and uncertainty labels", 2021): -1 -> a value
  drawn uniformly from [0.55, 0.85] per sample (used for CheXpert).

A policy is given by name, or as ``dict(type=name, missing_as_zero=True)`` to also turn missing
labels into 0 (CheXpert: blank -> 0). New policies are added with
:func:`register_label_policy`.
"""
from typing import Callable, Dict, Optional, Union

import numpy as np

# the range of the 'lsr' policy, as in Pham et al. and the Foundation X code
LSR_RANGE = (0.55, 0.85)

# name -> function(num_uncertain, rng) giving the values that replace the -1 labels
LABEL_POLICIES: Dict[str, Callable[[int, Optional[np.random.Generator]], np.ndarray]] = {}


def register_label_policy(name: str) -> Callable:
    """Register ``fn(num: int, rng: np.random.Generator | None) -> np.ndarray (num,)`` by name."""

    def register(fn: Callable) -> Callable:
        if name in LABEL_POLICIES:
            raise KeyError(f'label policy {name!r} is already registered')
        LABEL_POLICIES[name] = fn
        return fn

    return register


@register_label_policy('ignore')
def _keep_uncertain(num: int, rng: Optional[np.random.Generator]) -> np.ndarray:
    return np.full(num, -1.0)


@register_label_policy('ones')
def _uncertain_as_one(num: int, rng: Optional[np.random.Generator]) -> np.ndarray:
    return np.ones(num)


@register_label_policy('zeros')
def _uncertain_as_zero(num: int, rng: Optional[np.random.Generator]) -> np.ndarray:
    return np.zeros(num)


@register_label_policy('lsr')
def _uncertain_as_random(num: int, rng: Optional[np.random.Generator]) -> np.ndarray:
    if rng is None:
        raise ValueError("label policy 'lsr' draws random values: pass rng "
                         '(a np.random.Generator)')
    return rng.uniform(*LSR_RANGE, size=num)


def check_label_policy(policy: Union[str, dict]) -> dict:
    """Validate a policy given by name or dict and return it as a dict.

    Args:
        policy (str | dict): a name of :data:`LABEL_POLICIES`, or
            ``dict(type=name, missing_as_zero=bool)``.

    Returns:
        dict: ``dict(type=name, missing_as_zero=bool)``.
    """
    cfg = dict(type=policy) if isinstance(policy, str) else dict(policy)
    unknown = set(cfg) - {'type', 'missing_as_zero'}
    if unknown:
        raise ValueError(f'label policy {policy!r}: unknown keys {sorted(unknown)}; '
                         "expected 'type' and optionally 'missing_as_zero'")
    if cfg.get('type') not in LABEL_POLICIES:
        raise ValueError(f'unknown label policy {cfg.get("type")!r}; expected one of '
                         f'{sorted(LABEL_POLICIES)}')
    cfg.setdefault('missing_as_zero', False)
    if not isinstance(cfg['missing_as_zero'], bool):
        raise ValueError(f'label policy {policy!r}: missing_as_zero must be a bool')
    return cfg


def apply_label_policy(label: np.ndarray,
                       policy: Union[str, dict],
                       rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Map the uncertain (-1) and, if asked, missing (nan) entries of a label array.

    Args:
        label (np.ndarray): labels 1 / 0 / -1 / nan, shape (C,) (or any shape).
        policy (str | dict): see :func:`check_label_policy`.
        rng (np.random.Generator, optional): the local RNG of random policies ('lsr').

    Returns:
        np.ndarray: a new float32 array of the same shape.
    """
    cfg = check_label_policy(policy)
    out = np.array(label, dtype=np.float32)
    uncertain = out == -1
    out[uncertain] = LABEL_POLICIES[cfg['type']](int(uncertain.sum()), rng)
    if cfg['missing_as_zero']:
        out[np.isnan(out)] = 0
    return out
