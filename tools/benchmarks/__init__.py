"""Speed, memory and scaling of Foundation X against single-task OpenMMLab models
(``tools/benchmark.py``); see docs/benchmark.md."""
from .cp_check import cp_check
from .data import data_benchmark
from .inference import infer_benchmark
from .limit import limit_benchmark
from .report import write_report
from .scaling import scaling_benchmark
from .step import step_benchmark, variants_benchmark

__all__ = ['cp_check', 'data_benchmark', 'infer_benchmark', 'limit_benchmark',
           'scaling_benchmark', 'step_benchmark', 'variants_benchmark', 'write_report']
