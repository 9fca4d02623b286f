"""The model a val/test loop predicts with, under the wrappers put around it."""
from typing import Optional, Tuple

from mmengine.model import BaseTTAModel, is_model_wrapper
from torch import nn


def unwrap_tested_model(model: nn.Module) -> Tuple[nn.Module, Optional[str]]:
    """Take a DDP-style wrapper and a test-time-augmentation wrapper off ``model``.

    ``tools/test.py --tta`` wraps the config's model in its ``tta_model``, a
    :class:`~mmengine.model.BaseTTAModel` such as ``TenCropTTA``
    (``dict(**cfg.tta_model, module=cfg.model)``); a distributed runner wraps the result in
    DDP. Both are taken off, in either order.

    Args:
        model (nn.Module): ``runner.model``.

    Returns:
        tuple[nn.Module, str | None]: The innermost model (a ``TeacherStudent`` or a
        ``FoundationX``) and the class name of the TTA wrapper (None without one).
    """
    tta = None
    while True:
        if is_model_wrapper(model):
            model = model.module
        elif isinstance(model, BaseTTAModel):
            tta, model = type(model).__name__, model.module
        else:
            return model, tta
