"""Interleaved wall-clock timing, robust statistics and peak memory for the benchmarks.

Shared machines are noisy, so what the benchmarks report are ratios of candidates timed
side by side in one run: every round runs each candidate once (A B C, A B C, ... with the
order rotated every round, so no candidate always runs first), and a ratio is the median of
the per-round ratios.
"""
import contextlib
import ctypes
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import profiler

# the Linux files that give and reset a process's peak resident memory (VmHWM)
_STATUS, _CLEAR_REFS = '/proc/self/status', '/proc/self/clear_refs'


def synchronize(device: str) -> None:
    """Wait for the device's queued kernels (a no-op on CPU), so timers see the work."""
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)


def summarize(samples: Sequence[float]) -> dict:
    """Median and inter-quartile range of ``samples``.

    Returns:
        dict: ``median``, ``q1``, ``q3``, ``iqr``, ``min``, ``n`` (quartiles by linear
        interpolation; with one sample all equal it).
    """
    samples = sorted(float(s) for s in samples)
    if not samples:
        raise ValueError('summarize: no samples')
    if len(samples) == 1:
        q1 = q3 = samples[0]
    else:
        q1, _, q3 = statistics.quantiles(samples, n=4, method='inclusive')
    return dict(median=statistics.median(samples), q1=q1, q3=q3, iqr=q3 - q1, min=samples[0],
                n=len(samples))


def interleaved(fns: Dict[str, Callable[[], object]],
                repeats: int,
                warmup: int = 1,
                device: str = 'cpu',
                setups: Optional[Dict[str, Callable[[], None]]] = None) -> Dict[str, List[float]]:
    """Time each candidate ``repeats`` times, interleaved round by round.

    Args:
        fns (dict[str, callable]): name -> the work to time (one call = one sample).
        repeats (int): timed rounds.
        warmup (int): untimed rounds first (allocator, autotuning, lazy init).
        device (str): ``'cpu'`` or ``'cuda[:i]'``; on CUDA the device is synchronised around
            every call.
        setups (dict[str, callable], optional): name -> untimed preparation run right before
            each call of that candidate (e.g. switching a Lock-Release phase).

    Returns:
        dict[str, list[float]]: name -> ``repeats`` durations in seconds.
    """
    if repeats < 1:
        raise ValueError(f'interleaved: repeats must be >= 1, got {repeats}')
    setups = setups or {}
    names = list(fns)
    times = {name: [] for name in names}
    for round_idx in range(warmup + repeats):
        shift = round_idx % len(names)
        for name in names[shift:] + names[:shift]:
            if name in setups:
                setups[name]()
            synchronize(device)
            start = time.perf_counter()
            fns[name]()
            synchronize(device)
            if round_idx >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(numerator: Sequence[float], denominators: Sequence[Sequence[float]]) -> dict:
    """Per-round ratios ``numerator[i] / sum_j denominators[j][i]`` and their summary.

    Pairing by round cancels the slow drifts of a shared machine (another job starting)
    that a ratio of two medians would keep. ``ratio_of_min`` (fastest numerator over the sum
    of the fastest denominators) is given beside it: other jobs only ever add time, so on a
    shared machine the minimums are the least disturbed estimate.
    """
    ratios = [n / sum(d[i] for d in denominators) for i, n in enumerate(numerator)]
    return dict(summarize(ratios), ratio_of_min=min(numerator) / sum(min(d) for d in denominators))


def _read_status_kib(field: str) -> Optional[int]:
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_heap() -> None:
    """Give the heap memory glibc keeps after frees back to the system (``malloc_trim``),
    so that the next peak RSS counts the call's own allocations."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    try:
        with open(_CLEAR_REFS, 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def memory_kind(device: str) -> str:
    """What :func:`peak_memory` measures on ``device``, for the reports."""
    if device.startswith('cuda'):
        return ('peak increase of torch.cuda.memory_allocated over the call (MiB; '
                'max_memory_allocated minus what was allocated before it: activations, '
                'gradients and new optimiser state, not the resident models)')
    return ('peak RSS increase over the call (MiB, Linux VmHWM reset through '
            '/proc/self/clear_refs; after malloc_trim; excludes memory already '
            'resident: weights, optimiser state from earlier steps)')


def peak_memory(fn: Callable[[], object], device: str = 'cpu') -> Optional[float]:
    """Peak memory of one call of ``fn`` in MiB, as :func:`memory_kind` describes; None where
    it cannot be measured (CPU without ``/proc/self/clear_refs``)."""
    if device.startswith('cuda'):
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    _release_free_heap()
    start = _read_status_kib('VmRSS')
    if start is None or not _reset_peak_rss():
        fn()
        return None
    fn()
    peak = _read_status_kib('VmHWM')
    return max(peak - start, 0) / 1024


def profile_table(fn: Callable[[], object], device: str = 'cpu', row_limit: int = 15) -> str:
    """A ``torch.profiler`` table of one call of ``fn`` (after one untimed call), the ops
    sorted by their own time on the device that does the work."""
    fn()
    activities = [profiler.ProfilerActivity.CPU]
    sort_by = 'self_cpu_time_total'
    if device.startswith('cuda'):
        activities.append(profiler.ProfilerActivity.CUDA)
        sort_by = 'self_cuda_time_total'
    with profiler.profile(activities=activities) as prof:
        fn()
        synchronize(device)
    return prof.key_averages().table(sort_by=sort_by, row_limit=row_limit)


def autocast(device: str, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled`` (inference; training uses the AMP optim
    wrapper), else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type='cuda' if device.startswith('cuda') else 'cpu',
                          dtype=torch.bfloat16)


def cprofile_table(fn: Callable[[], object], calls: int = 1, row_limit: int = 15) -> str:
    """A ``cProfile`` table (Python functions by own time) of ``calls`` calls of ``fn``: the
    profile for Python-bound work such as data loading."""
    import cProfile
    import io
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stream = io.StringIO()
    pstats.Stats(prof, stream=stream).sort_stats('tottime').print_stats(row_limit)
    return stream.getvalue()
