"""Build the optimiser on the student only when the model carries a frozen teacher, with one
param group per distinct setting instead of one per parameter."""
import logging
from typing import List, Optional, Union

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn
from torch.optim import Optimizer

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


class PerParameterStateConverter:
    """Load-state-dict pre-hook of a merged optimiser: converts the state of the same
    parameters saved with one group per parameter (mmengine's layout, fxmm's before groups
    were merged) into the merged layout, so older checkpoints still resume.

    Args:
        per_param_order (list[nn.Parameter]): the parameters in the order of the per-parameter
            groups (the saved state's indices).
    """

    def __init__(self, per_param_order: List[nn.Parameter]) -> None:
        self.index_of = {id(p): i for i, p in enumerate(per_param_order)}

    def __call__(self, optimizer: Optimizer, state_dict: dict) -> Optional[dict]:
        saved = state_dict['param_groups']
        if (len(saved) == len(optimizer.param_groups) or len(saved) != len(self.index_of)
                or any(len(group['params']) != 1 for group in saved)):
            return None  # the merged layout already, or not this model's: torch checks it
        groups, state, start = [], {}, 0
        for group in optimizer.param_groups:
            members = [saved[self.index_of[id(p)]] for p in group['params']]
            settings = _settings(members[0])
            differing = [m for m in members if _settings(m) != settings]
            if differing:
                raise ValueError(
                    f'optimizer state: the saved per-parameter groups {settings} and '
                    f'{_settings(differing[0])} are one group of this optimiser, so the '
                    'checkpoint was saved with other paramwise settings than this config')
            for offset, member in enumerate(members):
                saved_index = member['params'][0]
                if saved_index in state_dict['state']:
                    state[start + offset] = state_dict['state'][saved_index]
            groups.append(dict(settings, params=list(range(start, start + len(members)))))
            start += len(members)
        print_log(f'optimizer state: {len(saved)} per-parameter groups of the checkpoint '
                  f'loaded as {len(groups)} merged groups', logger='current',
                  level=logging.INFO)
        return dict(state_dict, state=state, param_groups=groups)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StudentOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, applied to ``model.student`` when there is one, with
    equal param groups merged.

    A :class:`~fxmm.models.TeacherStudent` teacher is updated by EMA, never by the optimiser.
    The default constructor would either put its parameters into the optimiser (no
    ``paramwise_cfg``) or skip them with one warning each (hundreds at Swin-B). Building on
    the student gives an optimiser that holds exactly the student's parameters; parameter
    names then start below ``student.``, so ``custom_keys`` such as ``'backbone'`` match as
    before. Models without a student are handled exactly as by the default constructor.

    With a ``paramwise_cfg`` the default constructor makes one param group per parameter,
    and the optimiser walks every group at each step, also the many without a gradient (the
    heads of the pairs not in the batch): at 30 datasets AdamW's step took 28 ms of a 72 ms
    demo cls step. The groups with equal settings (lr, weight decay, ...) are merged here
    (two groups with a backbone lr multiplier), which changes no update: AdamW treats each
    parameter alone. A checkpoint saved with per-parameter groups still resumes
    (:class:`PerParameterStateConverter`).
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
        self._per_param_order = [p for group in per_param for p in group['params']]
        params.extend(merge_param_groups(per_param))

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, 'module'):  # DDP and other wrappers
            model = model.module
        self._per_param_order = None
        optim_wrapper = super().__call__(getattr(model, 'student', model))
        if self._per_param_order is not None:
            optim_wrapper.optimizer.register_load_state_dict_pre_hook(
                PerParameterStateConverter(self._per_param_order))
        return optim_wrapper
