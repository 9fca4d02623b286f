"""Models: FoundationX and its parts."""
from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .foundation_x import FoundationX
from .heads import *  # noqa: F401,F403
from .losses import MaskedBCEWithLogitsLoss, MultiLabelDiceLoss
from .necks import *  # noqa: F401,F403
from .teacher_student import TeacherStudent, inner_model_cfg, join_copies, select_copy
from .tta import TenCropTTA

__all__ = ['FoundationX', 'MaskedBCEWithLogitsLoss', 'MultiLabelDiceLoss', 'TeacherStudent',
           'TenCropTTA', 'inner_model_cfg', 'join_copies', 'select_copy']
