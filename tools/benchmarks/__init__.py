"""Speed, memory and scaling of Foundation X against single-task OpenMMLab models
(``tools/benchmark.py``); see docs/benchmark.md."""
from .data import data_benchmark
from .inference import infer_benchmark
from .report import write_report
from .scaling import scaling_benchmark
from .step import step_benchmark, variants_benchmark

__all__ = ['data_benchmark', 'infer_benchmark', 'scaling_benchmark', 'step_benchmark',
           'variants_benchmark', 'write_report']
