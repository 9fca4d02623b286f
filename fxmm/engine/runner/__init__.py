"""Registered loops."""
from .cyclic_train_loop import CyclicTrainLoop
from .teacher_student_val_loop import TeacherStudentValLoop

__all__ = ['CyclicTrainLoop', 'TeacherStudentValLoop']
