"""Registered hooks."""
from .results_table_hook import ResultsTableHook
from .visualization_hook import CXRVisualizationHook

__all__ = ['ResultsTableHook', 'CXRVisualizationHook']
