"""Build the optimiser on the student only when the model carries a frozen teacher, with one
param group per distinct setting instead of one per parameter."""
from typing import List, Optional, Union

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from fxmm.registry import OPTIM_WRAPPER_CONSTRUCTORS


def _settings(group: dict) -> dict:
    """A param group's settings: everything but its ``params``."""
    return {key: value for key, value in group.items() if key != 'params'}


def merge_param_groups(groups: List[dict]) -> List[dict]:
    """Merge param groups whose settings are equal, in order of first appearance.

    Args:
        groups (list[dict]): param groups (``params`` plus settings such as ``lr``).

    Returns:
        list[dict]: one group per distinct setting; the parameters of each in their order in
        ``groups``.
    """
    merged: List[dict] = []
    for group in groups:
        settings = _settings(group)
        target = next((m for m in merged if _settings(m) == settings), None)
        if target is None:
            merged.append(dict(settings, params=list(group['params'])))
        else:
            target['params'].extend(group['params'])
    return merged


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StudentOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, applied to ``model.student`` when there is one, with
    equal param groups merged.

    A :class:`~fxmm.models.TeacherStudent` teacher is updated by EMA, never by the optimiser.
    The default constructor would either put its parameters into the optimiser (no
    ``paramwise_cfg``) or skip them with one warning each (hundreds at Swin-B). Building on
    the student gives an optimiser that holds exactly the student's parameters; parameter
    names start below ``student.``, so ``custom_keys`` such as ``'backbone'`` match the
    student's modules. Models without a student are handled exactly as by the default
    constructor.

    With a ``paramwise_cfg`` the default constructor makes one param group per parameter,
    and the optimiser walks every group at each step, also the many without a gradient (the
    heads of the pairs not in the batch). The groups with equal settings (lr, weight decay,
    ...) are merged here (two groups with a backbone lr multiplier), which changes no update:
    AdamW treats each parameter alone.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        """The default constructor's per-parameter groups of ``module``, merged at the top
        level (``prefix=''``); its recursive calls on submodules are left as they are."""
        if prefix:
            super().add_params(params, module, prefix, is_dcn_module)
            return
        per_param: List[dict] = []
        super().add_params(per_param, module, prefix, is_dcn_module)
        params.extend(merge_param_groups(per_param))

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, 'module'):  # DDP and other wrappers
            model = model.module
        return super().__call__(getattr(model, 'student', model))
