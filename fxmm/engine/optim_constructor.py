"""Build the optimiser on the student only when the model carries a frozen teacher."""
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

from fxmm.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class StudentOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, applied to ``model.student`` when there is one.

    A :class:`~fxmm.models.TeacherStudent` teacher is updated by EMA, never by the optimiser.
    The default constructor would either put its parameters into the optimiser (no
    ``paramwise_cfg``) or skip them with one warning each (hundreds at Swin-B). Building on
    the student gives an optimiser that holds exactly the student's parameters; parameter
    names then start below ``student.``, so ``custom_keys`` such as ``'backbone'`` match as
    before. Models without a student are handled exactly as by the default constructor.
    """

    def __call__(self, model) -> OptimWrapper:
        if hasattr(model, 'module'):  # DDP and other wrappers
            model = model.module
        return super().__call__(getattr(model, 'student', model))
