"""Registered hooks."""
from .forgetting_probe_hook import ForgettingProbeHook
from .lock_release_hook import LockReleaseHook
from .results_table_hook import ResultsTableHook
from .teacher_ema_hook import TeacherEMAHook
from .visualization_hook import CXRVisualizationHook

__all__ = ['ForgettingProbeHook', 'LockReleaseHook', 'ResultsTableHook', 'TeacherEMAHook',
           'CXRVisualizationHook']
