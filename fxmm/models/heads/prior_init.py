"""Prior-probability initialisation of per-dataset sigmoid classifiers (RetinaNet's)."""
import logging
from typing import Dict, Mapping, Optional, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import bias_init_with_prob, normal_init

PriorProb = Optional[Union[float, Mapping[str, float]]]


def check_prior_prob(prior_prob: PriorProb, datasets, owner: str) -> Dict[str, float]:
    """The prior of each dataset that has one, validated.

    Args:
        prior_prob (float | dict[str, float] | None): One probability for every dataset, one
            per dataset name (datasets left out keep the default init; names the head does
            not have are skipped with a warning, so that a config derived with fewer
            datasets keeps working), or None (none).
        datasets (Iterable[str]): The head's dataset names.
        owner (str): The head's class name, for the error messages.

    Returns:
        dict[str, float]: Dataset name -> prior in (0, 1); empty for None.
    """
    if prior_prob is None:
        return {}
    datasets = list(datasets)
    if isinstance(prior_prob, Mapping):
        unknown = sorted(set(prior_prob) - set(datasets))
        if unknown:
            print_log(f'{owner}: prior_prob names datasets {unknown} the head does not have '
                      f'(skipped); its datasets: {datasets}', logger='current',
                      level=logging.WARNING)
        priors = {name: p for name, p in prior_prob.items() if name in datasets}
    else:
        priors = {name: prior_prob for name in datasets}
    for name, p in priors.items():
        if not isinstance(p, (int, float)) or not 0. < p < 1.:
            raise ValueError(f'{owner}: prior_prob of {name!r} must be a probability in '
                             f'(0, 1), got {p!r}')
    return {name: float(p) for name, p in priors.items()}


def init_prior_classifiers(classifiers: Mapping[str, nn.Module],
                           priors: Mapping[str, float]) -> None:
    """Start each named classifier's sigmoid outputs at its dataset's prior.

    The weights get Normal(0, 0.01) and the bias ``log(p / (1 - p))`` (Lin et al., Focal
    Loss, 2017, section 4.1), so that the outputs start near ``p`` for any input feature.

    Args:
        classifiers (dict[str, nn.Module]): Dataset name -> its last ``nn.Linear`` /
            ``nn.Conv2d``.
        priors (dict[str, float]): Dataset name -> prior in (0, 1) (from
            :func:`check_prior_prob`); datasets left out are not touched.
    """
    for name, p in priors.items():
        normal_init(classifiers[name], std=0.01, bias=bias_init_with_prob(p))
