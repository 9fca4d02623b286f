"""Helpers of the checkpoint converters in ``tools/model_converters/``: read a checkpoint,
rename its keys by templates, check the result against the model that will load it, and report
every key that found no place.

- :mod:`.key_rules`: :class:`KeyRule` templates and the :class:`KeyMapper` that applies them.
- :mod:`.key_report`: :func:`match_state_dict` and its :class:`KeyReport`.
- :mod:`.checkpoint_files`: reading the source checkpoint, writing the converted one.
- :mod:`.timm_swin`: timm's Swin (Ark, the authors' Foundation X) <-> mmpretrain's.
- :mod:`.idea_dino`: IDEA-Research DINO (the authors' Foundation X) -> fxmm's SharedDINO.

Building fxmm models and loading checkpoints into them is :mod:`fxmm.apis.model_setup`;
exporting them to mmpretrain / mmdet / mmseg is :mod:`fxmm.apis.export`.
"""
from .checkpoint_files import (add_conversion_args, load_checkpoint_file, save_converted,
                               select_state_dict)
from .key_report import REGENERATED_BUFFERS, KeyReport, match_state_dict
from .key_rules import ConversionError, KeyMapper, KeyRule, MappedStateDict, StateDict
from .timm_swin import (infer_swin_arch, merge_norm_timm_to_unfold, merge_norm_unfold_to_timm,
                        merge_weight_timm_to_unfold, merge_weight_unfold_to_timm,
                        mmpretrain_swin_to_timm, swin_num_stages, swin_pad_small_map,
                        swin_rules, timm_downsample_to_stage_end, timm_swin_to_mmpretrain)

__all__ = [
    'REGENERATED_BUFFERS', 'ConversionError', 'KeyMapper', 'KeyReport', 'KeyRule',
    'MappedStateDict', 'StateDict', 'add_conversion_args', 'infer_swin_arch',
    'load_checkpoint_file', 'match_state_dict', 'merge_norm_timm_to_unfold',
    'merge_norm_unfold_to_timm', 'merge_weight_timm_to_unfold', 'merge_weight_unfold_to_timm',
    'mmpretrain_swin_to_timm', 'save_converted',
    'select_state_dict', 'swin_num_stages', 'swin_pad_small_map', 'swin_rules',
    'timm_downsample_to_stage_end', 'timm_swin_to_mmpretrain'
]
