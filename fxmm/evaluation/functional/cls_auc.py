"""Multi-label classification: ROC-AUC per class and its mean (the paper's Cls AUC)."""
import logging
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.logging import print_log
from sklearn.metrics import roc_auc_score

# CheXpert's competition classes, on which CheXpert and MIMIC-CXR AUCs are reported.
CHEXPERT_COMPETITION_CLASSES = ('Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                                'Pleural Effusion')


def mean_auc(scores: np.ndarray,
             labels: np.ndarray,
             class_names: Sequence[str],
             classes: Optional[Sequence[str]] = None) -> Dict:
    """ROC-AUC of every class (:func:`sklearn.metrics.roc_auc_score`) and their mean.

    A sample takes part in a class's AUC only where its label is 1 or 0; ``nan`` (missing)
    and ``-1`` (uncertain) are ignored for that class. A class whose valid samples hold a
    single label value has no AUC: it is reported as ``nan``, listed in ``skipped``,
    left out of the mean, and a warning is logged.

    Args:
        scores (np.ndarray): predicted probabilities (or any monotone scores),
            shape (N, C).
        labels (np.ndarray): 1 / 0, or nan / -1 (ignored), shape (N, C).
        class_names (Sequence[str]): the C class names, in column order.
        classes (Sequence[str], optional): evaluate only these classes (e.g.
            :data:`CHEXPERT_COMPETITION_CLASSES`); all when None.

    Returns:
        dict: ``per_class`` (dict name -> AUC, in evaluation order, nan where skipped),
        ``mean`` (float, mean over the classes with an AUC; nan if none) and
        ``skipped`` (list of the classes without an AUC).
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(f'scores and labels must both have shape (N, C); got scores '
                         f'{scores.shape} and labels {labels.shape}')
    if len(class_names) != scores.shape[1]:
        raise ValueError(f'class_names has {len(class_names)} names but scores/labels have '
                         f'{scores.shape[1]} columns')
    known = ~np.isnan(labels)
    bad = known & ~np.isin(labels, (0., 1., -1.))
    if bad.any():
        raise ValueError(f'labels must be 1, 0, -1 (uncertain) or nan (missing); got '
                         f'{sorted(set(labels[bad].tolist()))[:5]}')
    if classes is None:
        classes = list(class_names)
    missing = [c for c in classes if c not in class_names]
    if missing:
        raise ValueError(f'classes {missing} are not among class_names {list(class_names)}')

    per_class, skipped = {}, []
    for name in classes:
        col = list(class_names).index(name)
        valid = np.isin(labels[:, col], (0., 1.))
        y = labels[valid, col]
        if np.unique(y).size < 2:
            per_class[name] = float('nan')
            skipped.append(name)
            continue
        per_class[name] = float(roc_auc_score(y, scores[valid, col]))
    if skipped:
        print_log(f'AUC skipped for {skipped}: their valid labels hold a single value '
                  '(no positives or no negatives); they are left out of the mean',
                  logger='current', level=logging.WARNING)
    values = [v for v in per_class.values() if not np.isnan(v)]
    mean = float(np.mean(values)) if values else float('nan')
    return dict(per_class=per_class, mean=mean, skipped=skipped)
