"""Registered loops."""
from .cyclic_train_loop import CyclicTrainLoop

__all__ = ['CyclicTrainLoop']
