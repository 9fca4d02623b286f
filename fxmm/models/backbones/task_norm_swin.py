"""mmpretrain's Swin with one set of output norms per task (the authors' released Foundation X)."""
from typing import Dict, Sequence, Tuple

from mmcv.cnn import build_norm_layer
from mmpretrain.models.backbones import SwinTransformer
from torch import Tensor, nn

from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import TASKS


@MODELS.register_module()
class TaskNormSwinTransformer(SwinTransformer):
    """mmpretrain's :class:`~mmpretrain.models.backbones.SwinTransformer` whose stage outputs
    are normalised per task.

    The Swin of the authors' Foundation X normalises its stages differently for each task's
    path: the cls path applies ``norm`` to stage 4 before pooling, the loc path ``Locnorm1-3``
    to stages 2-4 (DINO's inputs), the seg path nothing (the raw stage outputs; its
    ``Segnorm0-3`` are never applied). Here :meth:`forward` returns the raw stage outputs of
    ``out_indices``, and :meth:`task_outputs` applies the norms of one task, e.g. for that
    model ``task_norms=dict(cls=(3, ), loc=(1, 2, 3), seg=())``. ``FoundationX`` calls it for
    each task's path (:meth:`~fxmm.models.FoundationX.task_feats`).

    The norms are ``task_norms.<task>.<stage>`` (``backbone.task_norms.loc.1.weight``, ...),
    inside the backbone: they train with the backbone's learning rate and Lock-Release locks
    them with it. Every other argument is ``SwinTransformer``'s, and so are the parameter
    names of the blocks.

    Args:
        task_norms (dict[str, Sequence[int]]): Task -> the stages (indices into the 4 stages,
            each one of ``out_indices``) whose output that task reads normalised; a task not
            given, or given ``()``, reads the raw outputs.
        norm_cfg (dict): The norm of the task norms. Defaults to ``dict(type='LN')``.
        **kwargs: ``SwinTransformer`` arguments (``arch``, ``out_indices``,
            ``pad_small_map``, ...), except its ``norm_cfg`` (the outputs' norms).
    """

    def __init__(self,
                 task_norms: Dict[str, Sequence[int]],
                 norm_cfg: dict = dict(type='LN'),
                 **kwargs):
        super().__init__(norm_cfg=None, **kwargs)
        unknown = set(task_norms) - set(TASKS)
        if unknown:
            raise ValueError(f'TaskNormSwinTransformer: task_norms has unknown tasks '
                             f'{sorted(unknown)}; tasks are {TASKS}')
        self.task_norms = nn.ModuleDict()
        for task, stages in task_norms.items():
            outside = sorted(set(stages) - set(self.out_indices))
            if outside:
                raise ValueError(f'TaskNormSwinTransformer: task_norms[{task!r}] names stages '
                                 f'{outside}, which are not in out_indices {self.out_indices}')
            self.task_norms[task] = nn.ModuleDict({
                str(i): build_norm_layer(norm_cfg, self.num_features[i])[1]
                for i in sorted(stages)})

    def task_outputs(self, feats: Sequence[Tensor], task: str) -> Tuple[Tensor, ...]:
        """The stage outputs as ``task``'s path reads them.

        Args:
            feats (Sequence[Tensor]): :meth:`forward`'s raw outputs, one per ``out_indices``,
                shapes (B, C_i, H_i, W_i).
            task (str): One of ``'cls'``, ``'loc'``, ``'seg'``.

        Returns:
            tuple[Tensor]: The same shapes; the task's stages normalised over channels.
        """
        norms = self.task_norms[task] if task in self.task_norms else {}
        return tuple(
            norms[str(i)](x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()
            if str(i) in norms else x for i, x in zip(self.out_indices, feats))
