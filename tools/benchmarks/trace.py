"""One call (a training step) under ``torch.profiler``: the ops that take the time and the
host syncs, with where in the Python code each sync comes from.

A host sync is a point where the host waits for the device before it can queue more work:
the kernels queued so far must finish, so the GPU idles while Python catches up. On CUDA they
show as ``cudaStreamSynchronize`` / ``cudaDeviceSynchronize`` / ``cudaEventSynchronize``
calls; the ops that cause them (a tensor's value read on the host, an output whose size
depends on the data) are counted on every device, so the CPU table names the same syncs a
GPU step would make.
"""
import os.path as osp
from typing import Callable, Dict, List, Optional

from torch import profiler
from torch._C._profiler import _ExperimentalConfig

from .timing import synchronize

#: op or runtime call -> why it makes the host wait
SYNC_EVENTS = {
    'aten::_local_scalar_dense': 'a tensor value read on the host (.item(), float(), bool(), '
                                 'if tensor:)',
    'aten::nonzero': 'output size depends on the data (nonzero, boolean-mask indexing)',
    'aten::masked_select': 'output size depends on the data',
    'aten::_unique2': 'output size depends on the data (unique)',
    'cudaStreamSynchronize': 'the host waits for the stream',
    'cudaDeviceSynchronize': 'the host waits for the device',
    'cudaEventSynchronize': 'the host waits for an event',
}
# frames of these libraries are skipped when naming where a sync comes from
_LIBRARY_FRAMES = ('/torch/', 'torch/', '<built-in', 'contextlib.py', 'functools.py',
                   'benchmarks/trace.py')


def _optimizer_counter(event) -> bool:
    """A value read by a torch optimiser: its step counters, which stay on the host (no
    capturable / fused state), so reading them waits for no device."""
    return event.key == 'aten::_local_scalar_dense' and any('torch/optim/' in f
                                                             for f in event.stack)


def _where(stack: List[str], depth: int) -> str:
    frames = [f for f in stack if not any(skip in f for skip in _LIBRARY_FRAMES)]
    return ' <- '.join(_short(f) for f in frames[:depth]) or 'n/a'


def _short(frame: str) -> str:
    """``/long/path/site-packages/mmdet/models/x.py(12): fn`` -> ``mmdet/models/x.py(12): fn``."""
    path, _, rest = frame.partition('(')
    for marker in ('site-packages/', 'dist-packages/'):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        parts = path.split(osp.sep)
        path = osp.join(*parts[-3:]) if len(parts) > 3 else path
    return f'{path}({rest}' if rest else path


def step_trace(fn: Callable[[], object], device: str = 'cpu', row_limit: int = 25,
               stack_depth: int = 3, chrome_trace: Optional[str] = None) -> dict:
    """Profile one call of ``fn`` (after one untimed call) with Python stacks.

    Args:
        fn (callable): the step.
        device (str): ``'cpu'`` or ``'cuda[:i]'`` (CUDA kernels are recorded too).
        row_limit (int): rows of the top-ops table.
        stack_depth (int): frames outside torch named per sync.
        chrome_trace (str, optional): also write the trace there (``chrome://tracing``,
            Perfetto).

    Returns:
        dict: ``table`` (the text: top ops by own time on the device doing the work, then the
        syncs by where they come from), ``syncs`` (event -> calls), ``num_syncs`` (the
        calls of ``cudaStreamSynchronize`` & co on CUDA; elsewhere the calls of the syncing
        ops, less the optimiser's reads of its host-side step counters),
        ``top_ops`` (the 5 first rows: name, self time in ms, calls) and ``chrome_trace``.
    """
    fn()
    activities = [profiler.ProfilerActivity.CPU]
    cuda = device.startswith('cuda')
    if cuda:
        activities.append(profiler.ProfilerActivity.CUDA)
    sort_by = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    # verbose: the Python stacks reach the op events (without it they stay empty)
    with profiler.profile(activities=activities, with_stack=True,
                          experimental_config=_ExperimentalConfig(verbose=True)) as prof:
        fn()
        synchronize(device)
    averages = prof.key_averages()
    syncs = {e.key: e.count for e in averages if e.key in SYNC_EVENTS}
    by_stack = sorted((e for e in prof.key_averages(group_by_stack_n=stack_depth + 8)
                       if e.key in SYNC_EVENTS), key=lambda e: -e.count)
    if cuda:
        num_syncs = sum(v for k, v in syncs.items() if k.startswith('cuda'))
    else:
        num_syncs = sum(e.count for e in by_stack if not _optimizer_counter(e))
    rows = [f'| {e.key} | {e.count} | {_where(e.stack, stack_depth)}'
            f"{' (optimiser step counters on the host: no wait)' if _optimizer_counter(e) else ''}"
            ' |' for e in by_stack]
    self_time = 'self_device_time_total' if cuda else 'self_cpu_time_total'
    ranked = sorted(averages, key=lambda e: -getattr(e, self_time, 0.))
    top = [dict(name=e.key, self_ms=getattr(e, self_time, 0.) / 1e3, calls=e.count)
           for e in ranked[:5]]
    lines = [f'Host syncs in the step: {num_syncs} '
             f"({', '.join(f'{k} x{v}' for k, v in syncs.items()) or 'none'})", '',
             f'Top ops by {sort_by}:', '',
             averages.table(sort_by=sort_by, row_limit=row_limit), '',
             'Syncs by where they come from (innermost frames outside torch first):', '',
             '| event | calls | where |', '|---|---|---|'] + rows + ['']
    lines += [f'- {k}: {why}' for k, why in SYNC_EVENTS.items() if k in syncs]
    if chrome_trace:
        prof.export_chrome_trace(chrome_trace)
    return dict(table='\n'.join(lines) + '\n', syncs=syncs, num_syncs=num_syncs, top_ops=top,
                chrome_trace=chrome_trace)

