"""Run a Foundation X model on chest X-ray files: per-dataset probabilities, boxes, masks.

``python tools/infer.py INPUTS... --config CFG --weights CKPT --out-dir DIR`` reads DICOM,
PNG, JPEG, MHA/NRRD or JSRT .IMG files (INPUTS: files and/or folders, scanned recursively)
and writes ``DIR/predictions.json``, ``DIR/predictions.csv`` and ``DIR/overlays/<stem>.png``
(see :mod:`fxmm.apis.inferencer` for their layout). A file that cannot be read is reported and
skipped. The exit status is 0 when at least one image was processed (or none was given), 1
when every file failed.

Example, after the demo run (``python tools/train.py configs/foundation_x_demo.py``)::

    python tools/infer.py data/phantoms/phantom_ptx/images/test \\
        --config configs/foundation_x_demo.py \\
        --weights work_dirs/foundation_x_demo/iter_2560.pth \\
        --out-dir work_dirs/foundation_x_demo/infer
"""
import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import Config, DictAction

from fxmm.apis import FXInferencer
from fxmm.structures import TASKS


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Foundation X inference on chest X-ray files (all datasets, all tasks)')
    parser.add_argument('inputs', nargs='+', help='image files and/or folders')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--weights', required=True, help='checkpoint file')
    parser.add_argument('--out-dir', required=True,
                        help='where predictions.json/.csv and overlays/ are written')
    parser.add_argument('--device', help="'cpu', 'cuda', 'cuda:1'... (default: CUDA if "
                        'available)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='boxes scoring below it are left out (default 0.3)')
    parser.add_argument('--batch-size', type=int, default=4, help='images per forward pass')
    parser.add_argument('--img-size', type=int, nargs='+', metavar='S',
                        help='network input size, S or W H (default: the config\'s test '
                        'pipeline)')
    parser.add_argument('--datasets', nargs='+', metavar='NAME',
                        help='report only these datasets (default: all of the model)')
    parser.add_argument('--heads', nargs='+', choices=TASKS, default=list(TASKS),
                        help='report only these tasks (default: all)')
    parser.add_argument('--use', choices=['teacher', 'student'],
                        help='copy of a teacher-student checkpoint (default: the teacher '
                        'when present)')
    parser.add_argument('--panel-size', type=int, default=512,
                        help='long side of each overlay panel in pixels (default 512)')
    parser.add_argument('--no-overlays', action='store_true', help='do not write overlays')
    parser.add_argument('--no-csv', action='store_true', help='do not write predictions.csv')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    img_size = None
    if args.img_size:
        if len(args.img_size) > 2:
            raise SystemExit(f'--img-size takes S or W H, got {args.img_size}')
        img_size = args.img_size[0] if len(args.img_size) == 1 else tuple(args.img_size)
    inferencer = FXInferencer(
        cfg, args.weights, device=args.device, img_size=img_size, score_thr=args.score_thr,
        batch_size=args.batch_size, use=args.use, panel_size=args.panel_size)
    output = inferencer(
        args.inputs if len(args.inputs) > 1 else args.inputs[0], out_dir=args.out_dir,
        save_csv=not args.no_csv, save_overlays=not args.no_overlays, heads=args.heads,
        datasets=args.datasets)

    ok, failed = output['predictions'], output['errors']
    print(f'{len(ok)} image(s) ok, {len(failed)} failed')
    for error in failed:
        print(f"  FAILED {error['img_path']}: {error['error']}")
    written = ['predictions.json'] + ([] if args.no_csv else ['predictions.csv'])
    if not args.no_overlays:
        written.append(f'{len(ok)} overlay(s) in overlays/')
    print(f"wrote {', '.join(written)} to {args.out_dir}")
    return 1 if failed and not ok else 0


if __name__ == '__main__':
    sys.exit(main())
