"""Registered loops."""
from .cyclic_train_loop import CyclicTrainLoop
from .teacher_student_val_loop import TeacherStudentTestLoop, TeacherStudentValLoop

__all__ = ['CyclicTrainLoop', 'TeacherStudentTestLoop', 'TeacherStudentValLoop']
