"""Data structures shared by datasets, models and metrics: the task vocabulary, the data
sample, mask RLE and the left/right relabelling of a horizontal flip."""
from .cxr_data_sample import CLASS_KEYS, TASKS, CXRDataSample, check_task, pair_name

__all__ = ['CLASS_KEYS', 'TASKS', 'CXRDataSample', 'check_task', 'pair_name']
