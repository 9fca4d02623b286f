"""Registered hooks."""
from .results_table_hook import ResultsTableHook

__all__ = ['ResultsTableHook']
