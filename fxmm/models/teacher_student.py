"""The student-teacher pair of Foundation X / Ark: a trained student, an EMA teacher, and the
consistency loss between them."""
import copy
from collections import OrderedDict
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from fxmm.registry import MODELS
from fxmm.structures.cxr_data_sample import CXRDataSample, pair_name
from fxmm.utils.schedules import build_schedule

CONSISTENCY_MODES = ('add', 'ark')
#: the two copies of a TeacherStudent: its attributes, the prefixes of their state-dict keys
#: (``'student.<key>'``), the values of ``predict_on``, and the names its loops and tools use
COPIES = ('student', 'teacher')


def select_copy(state_dict: dict, copy_name: Optional[str] = None) -> Tuple[dict, Optional[str]]:
    """One copy of a ``TeacherStudent`` state dict, as a ``FoundationX`` state dict.

    A ``TeacherStudent`` state dict holds ``student.<key>`` and ``teacher.<key>`` (and its
    ``progress`` buffer); the chosen copy's keys lose their prefix, the other copy and
    unprefixed keys are dropped. A ``FoundationX`` state dict (no copy prefix) is returned as
    it is.

    Args:
        state_dict (dict): A checkpoint's ``state_dict``.
        copy_name (str, optional): ``'student'`` or ``'teacher'``. None (the default) takes
            the teacher - the EMA model, the one the methods release and predict with - when
            the state dict has one, else the student. Ignored for a plain state dict.

    Returns:
        tuple[dict, str | None]: The state dict (keeping ``_metadata``) and the copy it came
        from (None for a plain state dict).

    Raises:
        ValueError: ``copy_name`` is not a copy name, or names a copy the state dict lacks.
    """
    if copy_name is not None and copy_name not in COPIES:
        raise ValueError(f'copy must be one of {COPIES} or None, got {copy_name!r}')
    present = [name for name in COPIES if any(key.startswith(name + '.') for key in state_dict)]
    if not present:
        return state_dict, None
    if copy_name is None:
        copy_name = 'teacher' if 'teacher' in present else present[0]
    elif copy_name not in present:
        raise ValueError(f'the checkpoint has no {copy_name} copy (its copies: {present})')
    prefix = copy_name + '.'
    selected = OrderedDict((key[len(prefix):], value) for key, value in state_dict.items()
                           if key.startswith(prefix))
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        selected._metadata = OrderedDict(
            (key[len(prefix):] if key.startswith(prefix) else '', value)
            for key, value in metadata.items() if key.startswith(prefix) or key == copy_name)
    return selected, copy_name


def join_copies(student: dict, teacher: dict) -> dict:
    """A ``TeacherStudent`` state dict from two ``FoundationX`` ones (training progress 0)."""
    joined = OrderedDict((f'{COPIES[0]}.{key}', value) for key, value in student.items())
    joined.update((f'{COPIES[1]}.{key}', value) for key, value in teacher.items())
    joined['progress'] = torch.zeros(())
    return joined


def inner_model_cfg(model_cfg: dict) -> dict:
    """The ``FoundationX`` config of a model config: a ``TeacherStudent``'s inner ``model``
    (with the ``TeacherStudent``'s data preprocessor where it sets one), any other model
    config as it is. A copy; the argument is left alone."""
    model_cfg = copy.deepcopy(model_cfg)
    if str(model_cfg.get('type', '')).rpartition('.')[2] != 'TeacherStudent':
        return model_cfg
    inner = model_cfg['model']
    if model_cfg.get('data_preprocessor') is not None:
        inner['data_preprocessor'] = model_cfg['data_preprocessor']
    return inner


@MODELS.register_module()
class TeacherStudent(BaseModel):
    """A :class:`~fxmm.models.FoundationX` student and its EMA teacher in one model.

    The pattern of mmdet's ``SemiBaseDetector``: ``student`` and ``teacher`` are built from
    the same config; the teacher is frozen (``eval()``, ``requires_grad=False``, kept in eval
    mode by :meth:`train`), so it never gets a gradient and stays out of the optimiser
    (mmengine's ``DefaultOptimWrapperConstructor`` skips parameters that do not require grad
    when ``optim_wrapper`` has a ``paramwise_cfg``; ``TeacherEMAHook`` checks it), but it
    lives in the state dict, so checkpoints and resume carry it. The
    teacher is updated only by :class:`~fxmm.engine.hooks.TeacherEMAHook`, which also sets
    :attr:`progress`. :meth:`init_weights` starts the teacher as a copy of the student, and a
    plain ``FoundationX`` checkpoint (keys without ``student.``/``teacher.``) loads into both.

    Loss of a batch of one (dataset, task) pair (one student backbone pass, one teacher
    backbone pass on the same images, teacher in eval mode under ``torch.no_grad``)::

        mse  = MSE(f_student, f_teacher)             # mean over all elements
        add: loss = task losses + w * mse            # Foundation X, w = 0.5
        ark: loss = (1 - w) * task losses + w * mse  # Ark, w: cosine 0 -> 0.5

    with ``w = consistency_weight(progress)`` and the compared features ``f``:

    - ``cls``: the cls head's projector output on the pooled last stage, shape (B, P) -
      Ark's 1376-d projector; without a projector (Foundation X) the pooled feature itself,
      (B, 1024) at Swin-B.
    - ``seg``: the shared seg decoder's map L2-normalised over channels, (B, C, H/4, W/4).
      With BatchNorm in the decoder, equal weights still give a non-zero loss in training: the
      student normalises with batch statistics, the eval-mode teacher with running ones.
    - ``loc``: the decoder hidden states of the matching queries, all decoder layers,
      (num_layers, B, num_queries, 256). DINO selects its queries' anchor boxes from the
      encoder's top-scoring tokens, so student and teacher would pick different anchors and
      query ``i`` of one would not describe the same thing as query ``i`` of the other. The
      teacher's decoder is therefore run with the *student's* matching anchors (the initial
      reference boxes, already detached in DINO) and its own content queries, encoder memory
      and decoder: both decoders answer the same queries about the same image, and the
      difference measures only what the models learnt (the de-noising queries are left out;
      the matching queries cannot attend to them). The authors' code compared a tensor with
      itself here, a constant 0.

    Loss keys are the student's ``'<dataset>.<task>.<loss name>'`` plus
    ``'<dataset>.<task>.loss_consistency'`` (the weighted term).

    Args:
        model (dict): the ``FoundationX`` config of both copies.
        consistency_weight (float | dict): ``w`` above: a number or a
            :class:`~fxmm.utils.schedules.ProgressSchedule` config over the training
            progress, e.g. ``dict(type='cosine', start=0., end=0.5)`` (Ark). Must lie in
            [0, 1] with ``consistency_mode='ark'``. Defaults to 0.5 (Foundation X).
        consistency_mode (str): ``'add'`` or ``'ark'``, see above. Defaults to ``'add'``.
        predict_on (str): which copy :meth:`predict` runs, ``'student'`` or ``'teacher'``
            (:class:`~fxmm.engine.runner.TeacherStudentValLoop` evaluates both). Defaults to
            ``'student'``.
        data_preprocessor (dict, optional): defaults to the ``data_preprocessor`` of
            ``model``, else ``dict(type='CXRDataPreprocessor')``.
        init_cfg (dict, optional): initialisation config. Defaults to None.
    """

    def __init__(self,
                 model: dict,
                 consistency_weight: Union[float, dict] = 0.5,
                 consistency_mode: str = 'add',
                 predict_on: str = 'student',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if consistency_mode not in CONSISTENCY_MODES:
            raise ValueError(f'TeacherStudent: consistency_mode must be one of '
                             f'{CONSISTENCY_MODES}, got {consistency_mode!r}')
        if data_preprocessor is None:
            data_preprocessor = model.get('data_preprocessor') or dict(type='CXRDataPreprocessor')
        # built here, in fxmm's registry, so no default scope is needed
        super().__init__(data_preprocessor=MODELS.build(data_preprocessor), init_cfg=init_cfg)
        self.consistency_mode = consistency_mode
        self.consistency_schedule = build_schedule(
            consistency_weight, 'TeacherStudent consistency_weight',
            high=1. if consistency_mode == 'ark' else float('inf'))
        self.predict_on = predict_on
        self.student = MODELS.build(model)
        self.teacher = MODELS.build(model)
        self.freeze(self.teacher)
        #: the fraction of training done, in [0, 1]; set by TeacherEMAHook every iteration
        self.register_buffer('progress', torch.zeros(()))

    @staticmethod
    def freeze(model: nn.Module) -> None:
        """Put ``model`` in eval mode and stop its parameters from requiring grad."""
        model.eval()
        model.requires_grad_(False)

    @property
    def predict_on(self) -> str:
        """str: the copy :meth:`predict` runs, ``'student'`` or ``'teacher'``."""
        return self._predict_on

    @predict_on.setter
    def predict_on(self, value: str) -> None:
        if value not in COPIES:
            raise ValueError(f'TeacherStudent: predict_on must be one of {COPIES}, got '
                             f'{value!r}')
        self._predict_on = value

    @contextmanager
    def predicting_on(self, side: str) -> Iterator[None]:
        """Inside the block :meth:`predict` runs ``side`` (``'student'`` or ``'teacher'``);
        the copy it ran before is restored after, also on an error."""
        previous = self.predict_on
        self.predict_on = side
        try:
            yield
        finally:
            self.predict_on = previous

    @property
    def consistency_weight(self) -> float:
        """float: the consistency weight ``w`` at the current :attr:`progress`."""
        return self.consistency_schedule(float(self.progress))

    def set_progress(self, progress: float) -> None:
        """Set the fraction of training done (drives the consistency-weight schedule).

        Args:
            progress (float): in [0, 1].
        """
        if not 0. <= progress <= 1.:
            raise ValueError(f'TeacherStudent: progress must lie in [0, 1], got {progress}')
        self.progress.fill_(progress)

    def train(self, mode: bool = True) -> 'TeacherStudent':
        """Set the student's mode; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    def init_weights(self) -> None:
        """Initialise the student (and the teacher), then copy the student into the teacher."""
        super().init_weights()
        self.teacher.load_state_dict(self.student.state_dict())

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata: dict,
                              strict: bool, missing_keys: List[str],
                              unexpected_keys: List[str], error_msgs: List[str]) -> None:
        """Load a plain ``FoundationX`` state dict (no ``student.``/``teacher.`` keys) into
        both copies, as mmdet's ``SemiBaseDetector`` does; other state dicts load as usual."""
        own = [key for key in state_dict if key.startswith(prefix)]
        copy_prefixes = tuple(f'{name}.' for name in COPIES)
        if own and not any(key[len(prefix):].startswith(copy_prefixes) for key in own):
            for key in own:
                value = state_dict.pop(key)
                for copy_prefix in copy_prefixes:
                    state_dict[prefix + copy_prefix + key[len(prefix):]] = value
            # a plain checkpoint has no training progress: keep the current one
            state_dict[prefix + 'progress'] = self.progress.clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def loss(self, inputs: Tensor, data_samples: List[CXRDataSample]) -> Dict[str, Tensor]:
        """Student task losses plus the weighted consistency loss of the batch's pair.

        Args:
            inputs (Tensor): normalised images, shape (B, 3, H, W).
            data_samples (list[CXRDataSample]): one pair's samples with the gt of its task.

        Returns:
            dict[str, Tensor]: the student's ``'<dataset>.<task>.<loss name>'`` losses
            (scaled by ``1 - w`` in ``'ark'`` mode) and ``'<dataset>.<task>.loss_consistency'``.
        """
        dataset, task = self.student._pair_of(data_samples)
        losses, student_feat, anchors = self._student_pass(inputs, data_samples, dataset, task)
        with torch.no_grad():
            teacher_feat = self._teacher_pass(inputs, data_samples, dataset, task, anchors)
        weight = self.consistency_weight
        task_weight = 1. - weight if self.consistency_mode == 'ark' else 1.
        prefix = pair_name(dataset, task)
        out = {f'{prefix}.{name}': value * task_weight if 'loss' in name else value
               for name, value in losses.items()}
        out[f'{prefix}.loss_consistency'] = weight * F.mse_loss(student_feat, teacher_feat)
        return out

    def _student_pass(self, inputs: Tensor, data_samples: List[CXRDataSample], dataset: str,
                      task: str) -> Tuple[Dict[str, Tensor], Tensor, Optional[Tensor]]:
        """The student's task losses and compared feature from one backbone pass.

        Returns:
            tuple: the head's un-prefixed losses; the feature compared with the teacher
            (see the class docstring for its shape per task); for ``loc`` the matching
            queries' anchor boxes (B, num_queries, 4), normalised cxcywh, detached, else None.
        """
        student = self.student
        feats = student.extract_feat(inputs)
        if task == 'cls':
            pooled = student.pooled_features(feats)
            losses = student.cls_head.loss(pooled, data_samples, dataset)
            return losses, student.cls_head.project(pooled), None
        if task == 'seg':
            seg_feats = student.seg_features(feats)
            losses = student.seg_head.loss(seg_feats, data_samples, dataset)
            return losses, F.normalize(seg_feats, dim=1), None
        return student.loc_head.loss_and_query_states(student.loc_features(feats), data_samples,
                                                      dataset)

    def _teacher_pass(self, inputs: Tensor, data_samples: List[CXRDataSample], dataset: str,
                      task: str, anchors: Optional[Tensor]) -> Tensor:
        """The teacher's feature to compare with the student's (call under no_grad).

        Args:
            anchors (Tensor, optional): ``loc``: the student's matching anchors
                (B, num_queries, 4), normalised cxcywh.

        Returns:
            Tensor: the same shape as the student's feature.
        """
        teacher = self.teacher
        feats = teacher.extract_feat(inputs)
        if task == 'cls':
            return teacher.cls_head.project(teacher.pooled_features(feats))
        if task == 'seg':
            return F.normalize(teacher.seg_features(feats), dim=1)
        return teacher.loc_head.query_states(teacher.loc_features(feats), data_samples, dataset,
                                             anchors)

    def predict(self, inputs: Tensor, data_samples: List[CXRDataSample],
                **kwargs) -> List[CXRDataSample]:
        """``FoundationX.predict`` of the copy named by :attr:`predict_on`.

        Args:
            inputs (Tensor): normalised images, shape (B, 3, H, W).
            data_samples (list[CXRDataSample]): see ``FoundationX.predict``.
            **kwargs: e.g. ``heads='all'``.

        Returns:
            list[CXRDataSample]: ``data_samples`` with the predictions written in.
        """
        return getattr(self, self.predict_on).predict(inputs, data_samples, **kwargs)

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List[CXRDataSample]] = None,
                mode: str = 'tensor',
                **kwargs) -> Union[Dict[str, Tensor], List[CXRDataSample]]:
        """The mmengine entry point: ``mode`` is ``'loss'``, ``'predict'`` (``kwargs`` go to
        :meth:`predict`) or ``'tensor'`` (the raw outputs of the :attr:`predict_on` copy)."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples, **kwargs)
        if mode == 'tensor':
            return getattr(self, self.predict_on)(inputs, data_samples, mode='tensor')
        raise ValueError(f"TeacherStudent: invalid mode {mode!r}; use 'loss', 'predict' or "
                         "'tensor'")
