"""Data structures shared by datasets, models and metrics."""
from .cxr_data_sample import TASKS, CXRDataSample, check_task, pair_name

__all__ = ['TASKS', 'CXRDataSample', 'check_task', 'pair_name']
