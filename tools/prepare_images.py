"""Prepare an image store: every image of some annotation files, decoded once and reduced.

    python tools/prepare_images.py data/cxr/mimic-cxr-jpg/annotations/*.json --workers 8
    FXMM_IMAGE_STORE=prepared/512/ python tools/train.py configs/foundation_x.py

The store (``<data root>/prepared/<max side>/`` by default, the data root being the folder
above ``annotations/``) holds each image with its long side reduced to ``--max-side`` (512:
enough for the paper's 224 px crops of 80-100 % of the image), in its stored bit depth, as
raw pixels in one file; the annotation files stay as they are. A killed run resumes when run
again; skipped images are listed with their reason in ``<store>/prepare_report.json``.
See docs/datasets.md, "Preparing images".
"""
import argparse
import logging
import sys

from mmengine.logging import print_log

from fxmm.datasets.prepare_store import prepare_images


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('ann_files', nargs='+', help='fxmm annotation files of one data root')
    parser.add_argument('--max-side', type=int, default=512,
                        help='long side of the stored images (smaller images stay whole)')
    parser.add_argument('--store', default=None,
                        help='the store folder (default: <data root>/prepared/<max side>)')
    parser.add_argument('--data-root', default=None,
                        help="the folder the files' img_path are relative to (default: the "
                        'folder above annotations/)')
    parser.add_argument('--workers', type=int, default=1, help='decoding processes')
    parser.add_argument('--overwrite', action='store_true',
                        help='remove an existing store of that folder first')
    args = parser.parse_args(argv)
    if args.max_side < 1 or args.workers < 1:
        parser.error('--max-side and --workers must be positive')
    return args


def main(argv=None) -> int:
    """Returns 0 when every image is in the store, 1 when some were skipped, 2 on an error
    (files of several data roots, a store of other options, another run writing it)."""
    args = parse_args(argv)
    try:
        report = prepare_images(args.ann_files, store=args.store, max_side=args.max_side,
                                workers=args.workers, data_root=args.data_root,
                                overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, RuntimeError, ValueError) as err:
        print_log(f'prepare_images: {err}', logger='current', level=logging.ERROR)
        return 2
    return 1 if report['skipped'] else 0


if __name__ == '__main__':
    sys.exit(main())
