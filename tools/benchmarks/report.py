"""Write benchmark results: JSON (everything), Markdown (tables against the targets), PNG
(the scaling curves) and the torch.profiler tables of the targets not met."""
import datetime
import glob
import json
import os
import os.path as osp
import platform
from typing import List, Optional

import torch

from fxmm.utils.atomic_io import atomic_write_bytes


def machine() -> dict:
    """Where the numbers were measured."""
    info = dict(platform=platform.platform(), processor=platform.processor() or 'unknown',
                cpu_count=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return 'n/a'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return f'{value:.{digits}g}'
    return str(value)


def _ratio(r: dict) -> str:
    text = f"{r['median']:.2f} [{r['q1']:.2f}, {r['q3']:.2f}]"
    return text + (f"; min {r['ratio_of_min']:.2f}" if 'ratio_of_min' in r else '')


def _met(r: dict) -> str:
    return '**met**' if r['met'] else '**not met**'


def _table(header: List[str], rows: List[list]) -> List[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(_fmt(c) for c in row) + ' |' for row in rows]
    return lines + ['']


def step_lines(res: dict) -> List[str]:
    s = res['settings']
    lines = ['## 1. Training step', '',
             f"Input {s['size']} px, batch {s['batch_size']}, {s['repeats']} interleaved rounds "
             f"after {s['warmup']} warm-up, AMP {_fmt(s['amp'])}, gradient checkpointing "
             f"{_fmt(s['with_cp'])}. Ratios: median [quartiles] of the per-round ratios (met "
             'or not is judged on the median); min: fastest over fastest.', '']
    names = ['reference', 'fx', 'fx_locked', 'fx_teacher', 'fx_teacher_locked']
    lines += _table(['task (dataset)'] + [f'{n} s' for n in names],
                    [[f"{t} ({r['dataset']})"] + [r['times'][n]['median'] for n in names]
                     for t, r in res['tasks'].items()])
    rows = [[t, name, _ratio(v), f"<= {v['target']}", _met(v)]
            for t, r in res['tasks'].items() for name, v in r['ratios'].items()]
    lines += _table(['task', 'ratio', 'measured', 'target', ''], rows)
    lines += ['Locked step taken apart (frozen parameters: no `.grad` after backward, '
              'bit-identical after the AdamW step; the control counts those that get a grad '
              'when released):', '']
    rows = [[t, model, c['num_locked_params'], c['grad_none_after_backward'],
             c['unchanged_after_step'], c['released_grads']]
            for t, r in res['tasks'].items() for model, c in r['locked_check'].items()]
    lines += _table(['task', 'model', 'locked params', 'no grad', 'unchanged', 'grads when '
                     'released'], rows)
    lines += [f"Peak memory (MiB; {s['memory']}):", '']
    lines += _table(['task'] + names, [[t] + [r['peak_memory_mib'][n] for n in names]
                                       for t, r in res['tasks'].items()])
    return lines


def infer_lines(res: dict) -> List[str]:
    s = res['settings']
    heads = ', '.join(f'{t}: {len(d)}' for t, d in res['heads'].items())
    lines = ['## 2. Inference', '',
             f"Input {s['size']} px. FX `predict(heads='all')` returns every dataset's heads "
             f"({heads}); the references are one model per task ("
             + ', '.join(f'{t}: {d}' for t, d in res['references'].items())
             + '), run one after the other. "FX same heads" is a FoundationX with only '
             "the references' three heads (like for like).", '']
    rows = []
    for bs, r in res['batch_sizes'].items():
        ips = r['images_per_s']
        rows.append([bs, ips['fx'], ips['fx_same_heads'], ips['references_in_sequence'],
                     _ratio(r['ratio']), f"<= {r['ratio']['target']}", _met(r['ratio']),
                     _ratio(r['ratio_same_heads']), r['peak_memory_mib']['fx'],
                     max(v for k, v in r['peak_memory_mib'].items() if k.startswith('ref'))
                     if all(v is not None for v in r['peak_memory_mib'].values()) else None])
    lines += _table(['batch', 'FX images/s', 'FX same heads images/s', 'references images/s',
                     'FX / sum', 'target', '', 'FX same heads / sum', 'FX peak MiB',
                     'largest reference peak MiB'], rows)
    lines += ['What sharing the backbone can give at most: the sum of the references less '
              'all but one of their backbone passes.', '']
    lines += _table(['batch', 'backbone pass s', 'sum of references s', 'best FX / sum'],
                    [[bs, r['backbone_s'],
                      sum(v['median'] for k, v in r['times'].items() if k.startswith('ref')),
                      r['best_ratio_by_sharing']] for bs, r in res['batch_sizes'].items()])
    return lines


def data_lines(res: dict) -> List[str]:
    p, d = res['pipeline'], res['data_share']
    lines = ['## 3. Data pipeline', '',
             f"{p['files']} DICOM files of {p['dicom_size']} px, pipeline "
             f"{' -> '.join(p['pipeline'])}.", '']
    lines += _table(['what', 'files/s'], [[k, v] for k, v in p['files_per_s'].items()])
    rows = [['pipeline / raw pydicom throughput', _ratio(p['ratio']), f">= {p['ratio']['target']}",
             _met(p['ratio'])]]
    if 'skipped' in d:
        rows.append(['data share of an iteration', 'skipped: ' + d['skipped'], '', ''])
    else:
        rows.append([f"data share of an iteration ({d['num_workers']} workers, batch "
                     f"{d['batch_size']}, {d['iters']} iterations)", f"{d['share']['value']:.3f}",
                     f"< {d['share']['target']}", _met(d['share'])])
    lines += _table(['ratio', 'measured', 'target', ''], rows)
    return lines + (real_size_lines(res['real_size']) if res.get('real_size') else [])


def real_size_lines(res: dict) -> List[str]:
    """The real-size part of the data benchmark (:mod:`.real_size`)."""
    s, inputs = res['settings'], res['inputs']
    rate = s['gpu_samples_per_s']
    lines = ['### Real-size images: originals, reduced decoding, prepared store', '',
             f"The config's cls / loc / seg training pipelines ({s['img_size']} px) on "
             f"{s['files']} synthetic files per input x {s['repeats']} interleaved rounds, one "
             'process, one core. `reduced`: `LoadCXRImage(min_decoded_side='
             f"{s['max_side']})` (JPEG, JPEG baseline / JPEG 2000 DICOM); `store`: the image "
             f"store of `tools/prepare_images.py --max-side {s['max_side']}` (raw pixels). "
             f'Cores per GPU at {rate:g} samples/s = rate x seconds per image. Speed-up: '
             'median [quartiles] of the per-file ratios original / variant. '
             f"{s['cpu_count']} CPUs.", '']
    lines += _table(
        ['input', 'stands for', 'file KiB', 'stored (h x w)', 'stored KiB', 'prepare ms'],
        [[n, r['datasets'], r['file_kib'], 'x'.join(str(v) for v in r['stored_shape']),
          r['stored_kib'], r['prepare_ms']] for n, r in inputs.items()])
    rows = []
    for n, r in inputs.items():
        for task, t in r['tasks'].items():
            def get(key, v, t=t):
                return t[key].get(v)
            rows.append([f'{n} ({r["label"]})' if task == 'cls' else '', task,
                         get('ms', 'original'), get('ms', 'reduced'), get('ms', 'store'),
                         get('cores_per_gpu', 'original'), get('cores_per_gpu', 'reduced'),
                         get('cores_per_gpu', 'store'),
                         _ratio(t['speedup']['reduced']) if 'reduced' in t['speedup'] else None,
                         _ratio(t['speedup']['store'])])
    lines += _table(['input', 'task', 'original ms', 'reduced ms', 'store ms',
                     'cores/GPU original', 'reduced', 'store', 'speed-up reduced',
                     'speed-up store'], rows)
    lines += ["How far the outputs are from the original pipeline's, with the same sample "
              'seeds (worst file): image (0..1 after normalisation), boxes (input pixels), '
              'masks (share of pixels); training = the worst of the three training '
              'pipelines, test = resize (masks at the original size).', '']
    rows = []
    for n, r in inputs.items():
        for variant, d in r['difference'].items():
            train = [d[t] for t in ('cls', 'loc', 'seg') if t in d]
            rows.append([n, variant, max(x['image_max'] for x in train),
                         max(x['image_mean'] for x in train), d['test']['image_max'],
                         d['test']['image_mean'],
                         max(x.get('boxes_max_px', 0.) for x in train),
                         max(x.get('mask_pixels_differing', 0.) for x in train),
                         d['test'].get('mask_pixels_differing')])
    lines += _table(['input', 'variant', 'train image max', 'mean', 'test image max', 'mean',
                     'boxes max px', 'train masks', 'test masks'], rows)
    names = sorted({k for f in res['formats'].values() for k in f})
    lines += ['Store formats measured on the prepared images (decode ms / KiB; raw: the '
              "store's read):", '']
    lines += _table(['input'] + names,
                    [[n] + [f"{f[k]['ms']:.2f} / {f[k]['kib']:.0f}" if k in f else None
                            for k in names] for n, f in res['formats'].items()])
    if res['share']:
        lines += [f"Data share of a GPU step at {rate:g} samples/s: the config's loader "
                  '(cls pipeline) feeding a consumer that sleeps batch / rate per batch, on '
                  'this machine:', '']
        lines += _table(['input', 'variant', 'workers', 'batch', 'share', 'loader samples/s'],
                        [[n, v, x['num_workers'], x['batch_size'], x['share'],
                          x['loader_samples_per_s']]
                         for n, by in res['share'].items() for v, x in by.items()])
    return lines


def real_size_summary(res: dict) -> List[list]:
    """The summary rows of the real-size targets."""
    t, rate = res['targets'], res['settings']['gpu_samples_per_s']
    speed = t['store_speedup']
    rows = [['data: store / original cls pipeline (' + ', '.join(speed['values']) + ')',
             ', '.join(f'{v:.1f}' for v in speed['values'].values()) or 'n/a',
             f">= {speed['target']:g}", _met(speed)],
            [f"data: store / original, slowest input ({t['no_slower']['input']})",
             _fmt(t['no_slower']['value']), '>= 1', _met(t['no_slower'])],
            [f"data: cores per GPU from the store at {rate:g} samples/s, most "
             f"({t['cores_per_gpu']['where']})", _fmt(t['cores_per_gpu']['value']),
             f"<= {t['cores_per_gpu']['target']:g}", _met(t['cores_per_gpu'])]]
    if t['share']['value'] is not None:
        rows.append([f'data: share of a GPU step at {rate:g} samples/s from the store',
                     _fmt(t['share']['value']), f"< {t['share']['target']:g}",
                     _met(t['share'])])
    return rows


def scaling_lines(res: dict, png: Optional[str]) -> List[str]:
    s = res['settings']
    lines = ['## 4. Scaling', '',
             f"Student FoundationX, batch {s['batch_size']}, {s['repeats']} rounds; memory: "
             f"{s['memory']}.", '']
    rows = [[size] + [r['step_time'][t]['median'] for t in r['step_time']] +
            [r['peak_memory_mib'][t] for t in r['peak_memory_mib']]
            for size, r in res['sizes'].items()]
    if rows:
        tasks = list(next(iter(res['sizes'].values()))['step_time'])
        lines += _table(['size'] + [f'{t} s' for t in tasks] + [f'{t} peak MiB' for t in tasks],
                        rows)
    rows = [[n, r['param_mib']['total'], r['param_mib']['loc_decoders (per dataset)'],
             r['optimizer_state_mib']] + [r['step_time'][t]['median'] for t in r['step_time']] +
            [r['peak_memory_mib'][t] for t in r['peak_memory_mib']]
            for n, r in res['datasets'].items()]
    if rows:
        tasks = list(next(iter(res['datasets'].values()))['step_time'])
        lines += [f"Datasets at {s['datasets_size']} px (every dataset with all tasks):", '']
        lines += _table(['datasets', 'params MiB', 'DINO decoders MiB', 'AdamW state MiB'] +
                        [f'{t} s' for t in tasks] + [f'{t} peak MiB' for t in tasks], rows)
        lines += _table(['part', 'MiB per dataset', 'MiB fixed', 'R^2'],
                        [[part, f['slope'], f['intercept'], f['r2']]
                         for part, f in res['fits'].items()])
    if png:
        lines += [f'![scaling]({osp.basename(png)})', '']
    return lines


def plot_scaling(res: dict, path: str) -> str:
    """Step time and peak memory against size, parameter memory against datasets (PNG)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    sizes = list(res['sizes'])
    for task in (next(iter(res['sizes'].values()))['step_time'] if sizes else []):
        axes[0].plot(sizes, [res['sizes'][s]['step_time'][task]['median'] for s in sizes], 'o-',
                     label=task)
        mem = [res['sizes'][s]['peak_memory_mib'][task] for s in sizes]
        if all(m is not None for m in mem):
            axes[1].plot(sizes, mem, 'o-', label=task)
    axes[0].set(xlabel='input size (px)', ylabel='step time (s)', title='step time vs size')
    axes[1].set(xlabel='input size (px)', ylabel='peak MiB', title='peak memory vs size')
    nums = list(res['datasets'])
    for part in ('total', 'loc_decoders (per dataset)', 'backbone (shared)'):
        if nums:
            axes[2].plot(nums, [res['datasets'][n]['param_mib'][part] for n in nums], 'o-',
                         label=part)
    axes[2].set(xlabel='datasets (heads per task)', ylabel='parameter MiB',
                title='parameters vs datasets')
    for ax in axes:
        ax.grid(alpha=.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summary_lines(results: dict) -> List[str]:
    """One row per target: what it is, the measured value, met or not."""
    rows = []
    for task, r in results.get('step', {}).get('tasks', {}).items():
        for name, v in r['ratios'].items():
            rows.append([f'step {task}: {name}', _ratio(v), f"<= {v['target']}", _met(v)])
    for bs, r in results.get('infer', {}).get('batch_sizes', {}).items():
        rows.append([f'inference batch {bs}: FX / sum of references', _ratio(r['ratio']),
                     f"<= {r['ratio']['target']}", _met(r['ratio'])])
        same = dict(r['ratio_same_heads'], met=r['ratio_same_heads']['median'] <= r['ratio'][
            'target'])
        rows.append([f'(inference batch {bs}, same heads as the references)', _ratio(same),
                     f"<= {r['ratio']['target']}", _met(same)])
    if 'data' in results:
        p, d = results['data']['pipeline']['ratio'], results['data']['data_share']
        rows.append(['data: pipeline / pydicom throughput', _ratio(p), f">= {p['target']}",
                     _met(p)])
        if 'share' in d:
            rows.append(['data: share of an iteration', f"{d['share']['value']:.3f}",
                         f"< {d['share']['target']}", _met(d['share'])])
        if results['data'].get('real_size'):
            rows += real_size_summary(results['data']['real_size'])
    if results.get('limit'):
        rows += limit_summary(results['limit'])
    if results.get('cp_check'):
        rows += cp_check_summary(results['cp_check'])
    return _table(['target', 'measured', 'bound', ''], rows) if rows else []


def write_report(results: dict, out_dir: str, name: str, command: str) -> dict:
    """Write ``<name>.json``, ``<name>.md``, ``<name>_scaling.png`` (with scaling results),
    ``<name>_profile_<what>.txt`` (profiles) and ``<name>_trace_<task>_<candidate>.txt``
    (the limit's traces) under ``out_dir``.

    Returns:
        dict: the paths written, by kind.
    """
    os.makedirs(out_dir, exist_ok=True)
    for stale in glob.glob(osp.join(out_dir, f'{name}_profile_*.txt')) + glob.glob(
            osp.join(out_dir, f'{name}_trace_*.txt')):
        os.remove(stale)  # from an earlier run: only this run's profiles are listed
    results = dict(results, machine=machine(), command=command)
    paths = dict(json=osp.join(out_dir, f'{name}.json'), md=osp.join(out_dir, f'{name}.md'),
                 profiles=[])
    png = None
    if results.get('scaling'):
        png = paths['png'] = plot_scaling(results['scaling'],
                                          osp.join(out_dir, f'{name}_scaling.png'))
    for task, r in results.get('step', {}).get('tasks', {}).items():
        for candidate, table in r.pop('profiles', {}).items():
            path = osp.join(out_dir, f'{name}_profile_step_{task}_{candidate}.txt')
            atomic_write_bytes(table.encode(), path)
            paths['profiles'].append(path)
            r.setdefault('profile_files', {})[candidate] = osp.basename(path)
    for key in ('infer', 'data'):
        for what, table in results.get(key, {}).pop('profiles', {}).items():
            path = osp.join(out_dir, f'{name}_profile_{key}_{what}.txt')
            atomic_write_bytes(table.encode(), path)
            paths['profiles'].append(path)
    for task, r in results.get('limit', {}).get('tasks', {}).items():
        for candidate, trace in r['traces'].items():
            path = osp.join(out_dir, f'{name}_trace_{task}_{candidate}.txt')
            atomic_write_bytes(trace.pop('table').encode(), path)
            paths['profiles'].append(path)
            trace['file'] = osp.basename(path)
    m = results['machine']
    lines = ['# Foundation X benchmark', '', f'`{command}`', '',
             f"Machine: {m.get('gpu', 'CPU only')}; {m['cpu_count']} CPUs ({m['processor']}), "
             f"{m['threads']} torch threads, {m['platform']}, torch {m['torch']}; {m['date']}.",
             '']
    lines += summary_lines(results)
    if results.get('step'):
        lines += step_lines(results['step'])
    if results.get('infer'):
        lines += infer_lines(results['infer'])
    if results.get('data'):
        lines += data_lines(results['data'])
    if results.get('scaling'):
        lines += scaling_lines(results['scaling'], png)
    if results.get('variants'):
        lines += variants_lines(results['variants'])
    if results.get('limit'):
        lines += limit_lines(results['limit'])
    if results.get('cp_check'):
        lines += cp_check_lines(results['cp_check'])
    if paths['profiles']:
        lines += ['## Profiles (targets not met) and traces', '']
        lines += [f'- [{osp.basename(p)}]({osp.basename(p)})' for p in paths['profiles']] + ['']
    atomic_write_bytes('\n'.join(lines).encode(), paths['md'])
    atomic_write_bytes(json.dumps(results, indent=1, default=str).encode(), paths['json'])
    return paths


def variants_lines(res: dict) -> List[str]:
    s = res['settings']
    lines = ['## 5. GPU variants', '',
             f"{'TeacherStudent' if s['teacher'] else 'FoundationX'} at {s['size']} px, batch "
             f"{s['batch_size']}; mmcv CUDA ops: {_fmt(s['mmcv_cuda_ops'])}.", '']
    rows = [[task, name, v['samples_per_s'], v['step_time']['median'], v['peak_memory_mib']]
            if 'error' not in v else [task, name, 'failed: ' + v['error'], '', '']
            for task, r in res['tasks'].items() for name, v in r.items()]
    return lines + _table(['task', 'variant', 'samples/s', 'step s', 'peak MiB'], rows)


def limit_lines(res: dict) -> List[str]:
    """The limit (:mod:`.limit`): FX beside the bare steps, and the batch sweep."""
    s = res['settings']
    lines = ['## 6. The limit: FX beside the bare steps', '',
             f"Input {s['size']} px, batch {s['batch_size']}, {s['repeats']} interleaved rounds "
             f"after {s['warmup']} warm-up, bf16 {_fmt(s['amp'])}. `bare`: forward + backward "
             '+ plain AdamW on inputs already on the device (cls: the backbone + pool + '
             'linear; loc: mmdet DINO; seg: mmseg UperNet). Ratio: FX samples/s over the bare '
             "step's, median [quartiles] of the per-round ratios.", '']
    lines += _table(
        ['task (dataset)', 'bare samples/s', 'fx samples/s', 'fx_teacher samples/s',
         'fx / bare', 'fx_teacher / bare', 'bare peak MiB', 'fx peak MiB',
         'fx_teacher peak MiB'],
        [[f"{t} ({r['dataset']})"] + [r['samples_per_s'][c] for c in ('bare', 'fx', 'fx_teacher')]
         + [_ratio(r['ratios'][c]) for c in ('fx', 'fx_teacher')]
         + [r['peak_memory_mib'][c] for c in ('bare', 'fx', 'fx_teacher')]
         for t, r in res['tasks'].items()])
    traces = [[t, c, x['num_syncs'], ', '.join(f"{o['name']} {o['self_ms']:.1f} ms"
                                               for o in x['top_ops'][:3]), x.get('file')]
              for t, r in res['tasks'].items() for c, x in r['traces'].items()]
    if traces:
        lines += ['Traces of one step (`torch.profiler`; host syncs: the waits for the device '
                  'on CUDA, the ops that cause them elsewhere):', '']
        lines += _table(['task', 'candidate', 'host syncs', 'top ops (own time)', 'file'],
                        traces)
    sweep = res.get('sweep')
    if sweep:
        sizes = list(next(iter(sweep['times'].values())))
        lines += ['cls step time (s) against the batch, all interleaved; line fit: fixed s + '
                  's per sample x batch:', '']
        lines += _table(['candidate'] + [f'batch {b}' for b in sizes] +
                        ['fixed s', 's / sample', 'growth (largest / smallest)'],
                        [[c] + [t[b]['median'] for b in sizes] +
                         [sweep['fits'][c]['intercept'], sweep['fits'][c]['slope'],
                          sweep['growth'][c]] for c, t in sweep['times'].items()])
    return lines


def limit_summary(res: dict) -> List[list]:
    """The summary rows of the limit's targets (and its untargeted ratios)."""
    rows = []
    for task, r in res['tasks'].items():
        for name, v in r['ratios'].items():
            bound = f">= {v['target']}" if 'target' in v else 'reported'
            rows.append([f'limit {task}: {name} / bare samples/s', _ratio(v), bound,
                         _met(v) if 'met' in v else ''])
    for name, g in res.get('sweep', {}).get('growth_vs_bare', {}).items():
        rows.append([f"limit cls: {name}'s step time growth over the batch sweep / bare's",
                     _fmt(g['value']), f">= {g['target']}", _met(g)])
    return rows


def cp_check_lines(res: dict) -> List[str]:
    """The with_cp + loc check (:mod:`.cp_check`)."""
    s = res['settings']
    lines = ['## 7. Gradient checkpointing with the loc pairs', '',
             f"{s['steps']} loc steps of {s['dataset']} at {s['size']} px, batch "
             f"{s['batch_size']}, {'TeacherStudent' if s['teacher'] else 'FoundationX'}, the "
             'same initial weights and batches in every variant.', '']
    rows = [[name, r['with_cp'], r['amp'], len(r['losses']),
             ', '.join(_fmt(x['loss']) for x in r['losses']), r['params_finite'],
             r.get('first_loss_diff'), r['finite'], r['error'] or '']
            for name, r in res['variants'].items()]
    return lines + _table(['variant', 'with_cp', 'bf16', 'steps run', 'total loss per step',
                           'weights finite', '|first loss - fp32|', 'finite', 'error'], rows)


def cp_check_summary(res: dict) -> List[list]:
    """One row: every variant's losses and weights finite."""
    names = ', '.join(res['variants'])
    return [[f'with_cp + loc: every step finite ({names})', _fmt(res['all_finite']), 'yes',
             _met(dict(met=res['all_finite']))]]
