"""Measure Foundation X's speed, memory and scaling against single-task OpenMMLab models.

    python tools/benchmark.py all --config configs/foundation_x_demo.py           # CPU, < 10 min
    python tools/benchmark.py step --config configs/foundation_x.py --device cuda --batch-size 24
    python tools/benchmark.py scaling --config configs/foundation_x_demo.py --quick
    python tools/benchmark.py limit --config configs/foundation_x.py --device cuda --amp --trace
    python tools/benchmark.py cp-check --config configs/foundation_x.py --device cuda

Subcommands: ``step`` (training step per task: FX, + teacher, locked phases, against the
single-task mmpretrain / mmdet / mmseg models), ``infer`` (``predict(heads='all')`` against
the three references, batch 1 and 16), ``data`` (DICOM pipeline against raw pydicom, data
share of an iteration; the paper config's pipelines on real-size files of every dataset's
format from the originals, with reduced decoding and from a prepared store, in cores per
GPU at ``--gpu-samples-per-s``), ``scaling`` (input size, number of datasets; PNG), ``all`` (the
four, plus the AMP x checkpointing variants on CUDA), ``limit`` (FX's step beside the bare
Swin / DINO / UperNet steps and a cls batch sweep; ``--trace``: a ``torch.profiler`` table of
the top ops and host syncs of each step) and ``cp-check`` (a few loc steps with gradient
checkpointing: finite losses?). Each writes ``<out-dir>/<name>.json``
and ``<name>.md`` (``name`` = the subcommand, ``benchmark`` for ``all``).
"""
import argparse
import os
import os.path as osp
import shlex
import sys
import time
from typing import Optional

import torch
from mmengine.config import DictAction
from mmengine.logging import MMLogger

# the harness (tools/benchmarks/) and the phantom writer (data_converters/) are not installed
# with fxmm: import them from this checkout
ROOT = osp.dirname(osp.dirname(osp.realpath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)

from fxmm.utils.launch import load_config  # noqa: E402
from fxmm.structures.cxr_data_sample import TASKS  # noqa: E402
from tools import benchmarks  # noqa: E402
from tools.benchmarks.limit import CANDIDATES as LIMIT_CANDIDATES  # noqa: E402
from tools.benchmarks.real_inputs import REAL_INPUTS  # noqa: E402
from tools.benchmarks.real_size import GPU_SAMPLES_PER_S, PAPER_CONFIG  # noqa: E402

REAL_INPUT_NAMES = [i.name for i in REAL_INPUTS]

ALL = ('step', 'infer', 'data', 'scaling')  # what `all` runs
SUBCOMMANDS = ALL + ('all', 'limit', 'cp-check')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('command', choices=SUBCOMMANDS)
    parser.add_argument('--config', default='configs/foundation_x_demo.py')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:i]'")
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed interleaved rounds (default 8, --quick 2; data and scaling use '
                             'at most 3)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument('--batch-size', type=int, default=None,
                        help="training batch (default: the config's train batch)")
    parser.add_argument('--size', type=int, default=None,
                        help="input size of step, infer and the scaling datasets curve (default: "
                             "the backbone's img_size)")
    parser.add_argument('--infer-batch-sizes', type=int, nargs='+', default=[1, 16])
    parser.add_argument('--scaling-sizes', type=int, nargs='+', default=[224, 448, 512])
    parser.add_argument('--scaling-datasets', type=int, nargs='+', default=[3, 11, 30])
    parser.add_argument('--scaling-batch-size', type=int, default=2)
    parser.add_argument('--dicom-files', type=int, default=16)
    parser.add_argument('--dicom-size', type=int, default=512)
    parser.add_argument('--data-iters', type=int, default=8)
    parser.add_argument('--gpu-samples-per-s', type=float, default=GPU_SAMPLES_PER_S,
                        help='GPU training rate the data cores are sized for (default: the H100 '
                             "rate of the paper config's cls step, fp32 with teacher, batch 24, "
                             'docs/reliability.md)')
    parser.add_argument('--real-files', type=int, default=3,
                        help='files per real-size input (0: no real-size part)')
    parser.add_argument('--real-inputs', nargs='+', default=None, choices=REAL_INPUT_NAMES,
                        help='the real-size inputs (default: all)')
    parser.add_argument('--real-config', default=PAPER_CONFIG,
                        help='the config whose pipelines, workers and batch the real-size part '
                             'uses (default: the paper config, 224 px)')
    parser.add_argument('--store-side', type=int, default=512,
                        help='long side of the prepared store and of the reduced decoding')
    parser.add_argument('--share-batches', type=int, default=8,
                        help='counted batches of the data share at the GPU rate (0: skip)')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast (AMP optim wrapper)')
    parser.add_argument('--with-cp', action='store_true',
                        help='gradient checkpointing of the Swin stages')
    parser.add_argument('--quick', action='store_true',
                        help='2 rounds, inference at batch 1 and 4, scaling at 224/448 and '
                             '3/11 datasets, 8 DICOM files, 2 files per real-size input')
    parser.add_argument('--no-profile', action='store_true',
                        help='no torch.profiler table for the targets not met')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=TASKS,
                        help='the tasks of step and limit (default: all)')
    parser.add_argument('--sweep-batch-sizes', type=int, nargs='*', default=[8, 16, 24, 32],
                        help="limit: the cls step's batch sweep (none: no sweep)")
    parser.add_argument('--trace', nargs='*', default=None, choices=LIMIT_CANDIDATES,
                        help='limit: a torch.profiler table (top ops, host syncs) of one step '
                             'of these candidates (none named: all) in every task')
    parser.add_argument('--chrome-trace', action='store_true',
                        help="limit --trace: also write each step's Chrome trace (JSON)")
    parser.add_argument('--cp-steps', type=int, default=3, help='cp-check: loc steps per variant')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = args.repeats or 2
        args.infer_batch_sizes, args.dicom_files = [1, 4], 8
        args.real_files = min(args.real_files, 2)
        args.scaling_sizes, args.scaling_datasets = args.scaling_sizes[:2], [3, 11]
    args.repeats = args.repeats or 8
    if args.trace == []:
        args.trace = list(LIMIT_CANDIDATES)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no GPU here')
    return args


def real_size_args(args) -> Optional[dict]:
    """The arguments of the real-size part of ``data`` (None: skipped)."""
    if not args.real_files:
        return None
    inputs = [i for i in REAL_INPUTS if args.real_inputs is None or i.name in args.real_inputs]
    return dict(pipelines_cfg=load_config(args.real_config), num_files=args.real_files,
                gpu_samples_per_s=args.gpu_samples_per_s, max_side=args.store_side,
                share_batches=args.share_batches, inputs=inputs)


def run(args) -> dict:
    """Run the subcommand(s) and write the report; returns the paths written."""
    cfg = load_config(args.config, cfg_options=args.cfg_options)
    common = dict(device=args.device, repeats=args.repeats, warmup=args.warmup)
    todo = ALL if args.command == 'all' else (args.command, )
    results, log = {}, MMLogger.get_current_instance()
    for name in todo:
        start = time.perf_counter()
        if name == 'step':
            results[name] = benchmarks.step_benchmark(
                cfg, size=args.size, batch_size=args.batch_size, amp=args.amp,
                with_cp=args.with_cp, tasks=args.tasks, profile=not args.no_profile, **common)
        elif name == 'infer':
            results[name] = benchmarks.infer_benchmark(
                cfg, size=args.size, batch_sizes=args.infer_batch_sizes, amp=args.amp,
                profile=not args.no_profile, **common)
        elif name == 'data':
            results[name] = benchmarks.data_benchmark(
                cfg, device=args.device, num_files=args.dicom_files, dicom_size=args.dicom_size,
                repeats=min(args.repeats, 3), iters=args.data_iters, batch_size=args.batch_size,
                real_size=real_size_args(args))
        elif name == 'limit':
            if args.chrome_trace:
                os.makedirs(args.out_dir, exist_ok=True)
            results[name] = benchmarks.limit_benchmark(
                cfg, size=args.size, batch_size=args.batch_size,
                sweep_batch_sizes=args.sweep_batch_sizes, amp=args.amp, tasks=args.tasks,
                trace=args.trace or (), chrome_trace_dir=args.out_dir if args.chrome_trace
                else None, **dict(common, warmup=max(args.warmup, 1)))
        elif name == 'cp-check':
            results['cp_check'] = benchmarks.cp_check(
                cfg, device=args.device, size=args.size, batch_size=args.batch_size,
                steps=args.cp_steps)
        else:
            results[name] = benchmarks.scaling_benchmark(
                cfg, sizes=args.scaling_sizes, num_datasets=args.scaling_datasets,
                batch_size=args.scaling_batch_size, amp=args.amp, with_cp=args.with_cp,
                size=args.size, **dict(common, repeats=min(args.repeats, 3)))
        log.warning(f'benchmark {name}: {time.perf_counter() - start:.0f} s')
    if args.command == 'all' and args.device.startswith('cuda'):
        results['variants'] = benchmarks.variants_benchmark(
            cfg, device=args.device, size=args.size, batch_size=args.batch_size,
            repeats=args.repeats, warmup=max(args.warmup, 2))
    name = 'benchmark' if args.command == 'all' else args.command
    command = 'python ' + ' '.join(shlex.quote(a) for a in sys.argv)
    return benchmarks.write_report(results, args.out_dir, name, command)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    # the builders log every parameter group at INFO: keep the console to warnings
    MMLogger.get_instance('fxmm_benchmark', log_level='WARNING')
    paths = run(args)
    print(f"wrote {paths['md']} and {paths['json']}" +
          (f" and {paths['png']}" if 'png' in paths else ''))
    return paths


if __name__ == '__main__':
    main()
