"""What every dataset converter shares: the run (resumable, parallel, atomic), the CLI.

A converter (a subclass of :class:`BaseConverter`) does two things:

1. :meth:`BaseConverter.collect` reads the official tables into *records*, one per image:
   plain JSON-ready dicts with ``key`` (unique image id), ``img_file`` (absolute path),
   ``split`` (official split, ``'trainval'`` or None, see :mod:`.splits`), ``patient_id`` and
   whatever the image's annotation needs (labels, RLE strings, polygons...). Bad rows and
   missing images are recorded in the :class:`~.report.ConversionReport` and left out.
2. :meth:`BaseConverter.annotate` turns one record and its decoded image into the entry's
   ``cls_label``, ``instances`` and ``seg`` (run in worker processes with ``--workers``).
   A label the official files found do not give is ``None`` (null).

:meth:`BaseConverter.run` does the rest: refuses to replace earlier output without
``--overwrite``; reads every image with :func:`fxmm.datasets.image_io.read_cxr_image` (which
validates it and gives height/width/pixel spacing; an unreadable image is skipped with its
reason); optionally writes an 8/16-bit PNG copy (``--to-png``); keeps every finished image in
a cache so that an interrupted run resumes where it stopped; assigns the patient-level splits;
lists in ``metainfo['tasks']`` only the tasks the converted images have labels for, and notes
the classes no image labels; writes ``<out>/annotations/<prefix><split>.json`` atomically,
and the report next to them. On the command line (:meth:`BaseConverter.main`) a SIGTERM or
Ctrl-C stops the run with a message that running the same command again resumes it.
"""
import argparse
import contextlib
import logging
import os
import os.path as osp
import shutil
import signal
import sys
from collections import Counter
from multiprocessing import Pool
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pydicom
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from fxmm.datasets.cxr_dataset import ANNOTATION_VERSION
from fxmm.datasets.image_io import read_cxr_image
from fxmm.utils.atomic_io import atomic_write_bytes, atomic_write_json
from .report import ConversionReport
from .result_cache import ResultCache, record_fingerprint
from .splits import SPLITS, assign_split, check_fractions

# errors that make one image unusable (CXRImageError is a ValueError); others are bugs
RECORD_ERRORS = (ValueError, OSError, cv2.error)


def dicom_tag(path: str, keyword: str) -> Optional[str]:
    """A text tag of a DICOM file's header (e.g. ``'PatientID'``), None if absent or empty."""
    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword], force=True)
    value = str(ds.get(keyword, '') or '').strip()
    return value or None


def png_array(img: np.ndarray) -> np.ndarray:
    """The integer array a PNG copy of ``img`` stores.

    Whole-number images within 0..255 become 8-bit, within 0..65535 16-bit, unchanged (PNG,
    JPEG, most DICOM and JSRT sources); any other image (negative or fractional values after
    a rescale/VOI LUT) is mapped linearly from its min..max onto 0..65535. The loader rescales
    every image by its own range, so this keeps all the contrast.

    Args:
        img (np.ndarray): float image, shape (H, W).

    Returns:
        np.ndarray: uint8 or uint16, shape (H, W).
    """
    lo, hi = float(img.min()), float(img.max())
    if lo >= 0 and np.array_equal(img, np.round(img)):
        if hi <= 255:
            return img.astype(np.uint8)
        if hi <= 65535:
            return img.astype(np.uint16)
    scale = 65535.0 / (hi - lo) if hi > lo else 0.0
    return np.round((img - lo) * scale).astype(np.uint16)


# the converter of a worker process (set by the pool initializer)
_WORKER_CONVERTER = None


def _init_worker(converter: 'BaseConverter') -> None:
    global _WORKER_CONVERTER
    _WORKER_CONVERTER = converter
    # the parent handles the stop (a forked worker inherits its handlers): Ctrl-C reaches
    # the whole process group, and the pool ends its workers with SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _process_in_worker(record: dict):
    return _WORKER_CONVERTER.process(record)


class ConversionInterrupted(BaseException):
    """A signal (SIGTERM) stopped a conversion. A ``BaseException``, as ``KeyboardInterrupt``,
    so that ``convert_all``'s per-dataset error handling does not take it for one dataset's
    failure and go on with the next.

    Args:
        signum (int): The signal number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def resume_hint_on_interrupt(hint: Callable[[], str]) -> Iterator[None]:
    """Run a command-line conversion so that SIGTERM (a scheduler's or ``kill``'s stop) and
    Ctrl-C end it with a message saying how to resume, not silently.

    Inside the block SIGTERM raises :class:`ConversionInterrupted` (the previous handler is
    restored after it). When it or ``KeyboardInterrupt`` ends the block, ``hint()`` is logged
    as a warning and the process exits with ``128 + signal number`` (143 for SIGTERM, 130 for
    Ctrl-C), as a shell reports a process killed by that signal.

    Args:
        hint (Callable[[], str]): Says what was kept and how to resume; called after the stop.

    Raises:
        SystemExit: After a stop.
    """
    def stop(signum, frame):
        raise ConversionInterrupted(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except (ConversionInterrupted, KeyboardInterrupt) as err:
        signum = getattr(err, 'signum', signal.SIGINT)
        print_log(f'stopped by {signal.Signals(signum).name}: {hint()}', logger='current',
                  level=logging.WARNING)
        raise SystemExit(128 + signum) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_common_arguments(parser: argparse.ArgumentParser, with_root: bool = True) -> None:
    """Add the options every converter takes (``--root``/``--out`` only if ``with_root``)."""
    if with_root:
        parser.add_argument('--root', required=True,
                            help="the dataset's official folder (see docs/datasets.md)")
        parser.add_argument('--out', default=None,
                            help='where annotations/ (and png/) are written, the data root '
                            'of the config; None: --root')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an earlier conversion in --out')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes decoding images in parallel')
    parser.add_argument('--to-png', action='store_true',
                        help='also write 8/16-bit PNG copies under <out>/png/ and train '
                        'from them')
    parser.add_argument('--split-seed', type=int, default=0,
                        help='seed of the patient-level split')
    parser.add_argument('--val-fraction', type=float, default=0.1,
                        help="patients for 'val' (from the official training part)")
    parser.add_argument('--test-fraction', type=float, default=0.2,
                        help="patients for 'test' where the dataset has no split")


class BaseConverter:
    """Base class of the converters from an official dataset layout to fxmm's format.

    Subclasses set the class attributes below and implement :meth:`collect` and
    :meth:`annotate` (and, for extra options, :meth:`add_arguments` and :meth:`options`).

    Class attributes:
        dataset (str): ``metainfo['dataset']``, the short name (e.g. ``'siim'``).
        tasks (tuple[str]): Tasks the annotation supports (``'cls'``, ``'loc'``, ``'seg'``).
        cls_classes, det_classes, seg_classes (tuple[str]): Class lists (empty if no task).
        lr_pairs (tuple[tuple[str, str]]): (left, right) class names a flip swaps.
        source (str): Where the dataset comes from (citation / URL).
        ann_prefix (str): Prefix of the annotation file names, e.g. ``'organs_'``.

    Args:
        root (str): The dataset's official folder.
        out (str, optional): Where ``annotations/`` (and ``png/``) go; the data root of the
            config. ``img_path`` is written relative to it. Defaults to ``root``.
        overwrite (bool): Replace an earlier conversion in ``out``. Defaults to False.
        workers (int): Processes decoding images. Defaults to 1 (in-process).
        to_png (bool): Write a PNG copy of every image under ``<out>/png/`` and point
            ``img_path`` at it (8/16-bit, see :func:`png_array`). Defaults to False.
        split_seed (int): Seed of the patient-level split. Defaults to 0.
        val_fraction (float): Patients for 'val' (from the official training part, or from
            all when there is no official split). Defaults to 0.1.
        test_fraction (float): Patients for 'test' when there is no official split.
            Defaults to 0.2.
    """

    dataset: str = ''
    tasks: Tuple[str, ...] = ()
    cls_classes: Tuple[str, ...] = ()
    det_classes: Tuple[str, ...] = ()
    seg_classes: Tuple[str, ...] = ()
    lr_pairs: Tuple[Tuple[str, str], ...] = ()
    source: str = ''
    ann_prefix: str = ''

    def __init__(self,
                 root: str,
                 out: Optional[str] = None,
                 overwrite: bool = False,
                 workers: int = 1,
                 to_png: bool = False,
                 split_seed: int = 0,
                 val_fraction: float = 0.1,
                 test_fraction: float = 0.2) -> None:
        if not osp.isdir(root):
            raise FileNotFoundError(f'{type(self).__name__}: dataset folder {root!r} not found')
        if workers < 1:
            raise ValueError(f'workers must be >= 1, got {workers}')
        self.root = osp.abspath(root)
        self.out = osp.abspath(out or root)
        self.ann_dir = osp.join(self.out, 'annotations')
        self.png_dir = osp.join(self.out, 'png')
        self.overwrite = overwrite
        self.workers = workers
        self.to_png = to_png
        self.split_seed = split_seed
        self.fractions = check_fractions(val_fraction, test_fraction)

    # ------------------------------------------------------------------ to implement
    def collect(self, report: ConversionReport) -> List[dict]:
        """Read the official tables into records (see the module docstring)."""
        raise NotImplementedError

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        """``cls_label``, ``instances``, ``seg`` (and optionally ``patient_id``) of one image.

        Args:
            record (dict): One record of :meth:`collect`.
            img (np.ndarray): The decoded image, float32 (H, W).

        Raises:
            ValueError: The annotation cannot be used (the image is then skipped).
        """
        raise NotImplementedError

    def options(self) -> dict:
        """Dataset options the per-image results depend on (checked on resume)."""
        return {}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add dataset-specific command-line options (passed to ``__init__``)."""

    # ------------------------------------------------------------------ provided
    def load_image(self, record: dict) -> Tuple[np.ndarray, dict]:
        """Decode a record's image: float32 (H, W) and its meta (see ``read_cxr_image``)."""
        return read_cxr_image(record['img_file'])

    def png_file(self, record: dict) -> str:
        """Where the PNG copy of a record's image goes: ``<out>/png/<path under root>.png``."""
        rel = osp.relpath(record['img_file'], self.root)
        if rel.startswith('..'):
            rel = record['key']
        return osp.join(self.png_dir, osp.splitext(rel)[0] + '.png')

    def index_files(self, suffixes: Sequence[str], by_stem: bool = True,
                    report: Optional[ConversionReport] = None,
                    parent: Optional[str] = None) -> Dict[str, str]:
        """Map file stems (or names) to paths for every file under ``root`` whose name ends
        with one of ``suffixes`` (case-insensitive; ``''`` matches all), skipping this
        converter's own ``annotations/`` and ``png/`` output; with ``parent``, only the files
        of folders with that name.

        A name found twice keeps its first path (in sorted order); the duplicates are counted
        in ``report``.
        """
        suffixes = tuple(s.lower() for s in suffixes)
        skip = {osp.normpath(self.ann_dir), osp.normpath(self.png_dir)}
        index: Dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames
                                 if osp.normpath(osp.join(dirpath, d)) not in skip)
            if parent is not None and osp.basename(dirpath) != parent:
                continue
            for name in sorted(filenames):
                if not name.lower().endswith(suffixes) or name.startswith('.'):
                    continue
                key = osp.splitext(name)[0] if by_stem else name
                if key in index:
                    if report is not None:
                        report.count('duplicate image file names (first kept)')
                    continue
                index[key] = osp.join(dirpath, name)
        return index

    def process(self, record: dict) -> Tuple[str, Optional[dict], Optional[str]]:
        """Decode and annotate one record.

        Returns:
            tuple: ``(key, entry, None)``, or ``(key, None, reason)`` when the image or its
            annotation cannot be used.
        """
        try:
            img, meta = self.load_image(record)
            img_file = record['img_file']
            if self.to_png:
                img_file = self.png_file(record)
                if self.overwrite or not osp.isfile(img_file):
                    ok, buf = cv2.imencode('.png', png_array(img))
                    if not ok:
                        raise OSError(f'cannot encode {img_file} as PNG')
                    atomic_write_bytes(buf.tobytes(), img_file)
            entry = dict(img_path=osp.relpath(img_file, self.out).replace(os.sep, '/'),
                         height=int(img.shape[0]), width=int(img.shape[1]),
                         patient_id=str(record.get('patient_id') or record['key']))
            if meta.get('pixel_spacing'):
                entry['pixel_spacing'] = [float(s) for s in meta['pixel_spacing']]
            entry.update(cls_label=[], instances=[], seg={})
            entry.update(self.annotate(record, img))
        except RECORD_ERRORS as err:
            return record['key'], None, str(err)
        return record['key'], entry, None

    def metainfo(self, split: str, tasks: Optional[Sequence[str]] = None) -> dict:
        """The ``metainfo`` of one annotation file.

        Args:
            split (str): The split it holds.
            tasks (Sequence[str], optional): The tasks it has labels for (a subset of
                :attr:`tasks`; the class lists of the others are empty). None: all.
        """
        tasks = list(self.tasks if tasks is None else tasks)
        classes = {task: list(names) if task in tasks else [] for task, names in (
            ('cls', self.cls_classes), ('loc', self.det_classes), ('seg', self.seg_classes))}
        return dict(dataset=self.dataset, tasks=tasks, cls_classes=classes['cls'],
                    det_classes=classes['loc'], seg_classes=classes['seg'],
                    lr_pairs=[list(pair) for pair in self.lr_pairs],
                    source=self.source, converter_version=ANNOTATION_VERSION, split=split)

    def ann_file(self, split: str) -> str:
        """Path of the annotation file of ``split``."""
        return osp.join(self.ann_dir, f'{self.ann_prefix}{split}.json')

    @property
    def report_file(self) -> str:
        """Path of the JSON conversion report."""
        return osp.join(self.ann_dir, f'{self.ann_prefix}conversion_report.json')

    @property
    def partial_dir(self) -> str:
        """The cache of an unfinished run (see :class:`~.result_cache.ResultCache`)."""
        return osp.join(self.ann_dir, f'.{self.ann_prefix}partial')

    @staticmethod
    def _drop_duplicates(records: List[dict], report: ConversionReport) -> List[dict]:
        """Leave out, and report, every image listed more than once by the official files
        (e.g. in both the train and the test table): which of its annotations holds is
        ambiguous."""
        splits: Dict[str, List[str]] = {}
        for record in records:
            splits.setdefault(record['key'], []).append(str(record['split'] or 'unassigned'))
        for key, where in splits.items():
            if len(where) > 1:
                report.skip(key, f'listed {len(where)} times by the official files (official '
                            f'splits: {", ".join(where)}): left out as ambiguous')
        return [r for r in records if len(splits[r['key']]) == 1]

    def run(self) -> ConversionReport:
        """Convert the dataset (see the module docstring).

        Returns:
            ConversionReport: What was converted and skipped (also saved as JSON).

        Raises:
            FileExistsError: Earlier output exists and ``overwrite`` is False, or an
                interrupted run with other options is in the way.
        """
        cache_dir = self._check_output()
        report = ConversionReport(self.dataset)
        records = self._drop_duplicates(
            [r for r in self.collect(report) if r['key'] not in report], report)
        options = dict(dataset=self.dataset, converter_version=ANNOTATION_VERSION,
                       root=self.root, to_png=self.to_png, **self.options())
        with ResultCache(cache_dir, options) as cache:
            entries = self._process_all(records, cache, report)
        self._warn_if_one_patient(entries)
        tasks = self._labelled_tasks(entries, report)
        by_split: Dict[str, List[Tuple[str, dict]]] = {split: [] for split in SPLITS}
        for record in records:
            entry = entries.get(record['key'])
            if entry is not None:
                split = assign_split(entry['patient_id'], record['split'], self.split_seed,
                                     **self.fractions)
                by_split[split].append((record['key'], entry))
        for split, items in by_split.items():
            path = self.ann_file(split)
            if items:
                items.sort(key=lambda item: item[0])
                atomic_write_json(dict(metainfo=self.metainfo(split, tasks),
                                       data_list=[entry for _, entry in items]), path)
                report.converted[split] = len(items)
                report.files.append(path)
            elif osp.exists(path):
                os.remove(path)  # stale, from the conversion this run replaces
        report.dump(self.report_file)
        shutil.rmtree(cache_dir)  # the output is complete
        print_log(report.summary(path=self.report_file), logger='current')
        for note in report.notes:
            print_log(f'{self.dataset}: {note}', logger='current', level=logging.WARNING)
        return report

    def _labelled_tasks(self, entries: Dict[str, dict],
                        report: ConversionReport) -> Tuple[str, ...]:
        """The tasks of :attr:`tasks` that the converted images have labels for; what they
        lack is noted in ``report``.

        'cls' is left out, and every ``cls_label`` emptied, when no image has a cls label
        (all null): a task is never listed without labels. Classes of a listed task that no
        image labels (cls: null in every image; loc: no box; seg: no mask) are noted.
        """
        items = list(entries.values())
        if not items:
            return self.tasks
        tasks = list(self.tasks)
        if 'cls' in tasks:
            unlabelled = [name for i, name in enumerate(self.cls_classes)
                          if all(e['cls_label'][i] is None for e in items)]
            if len(unlabelled) == len(self.cls_classes):
                tasks.remove('cls')
                for entry in items:
                    entry['cls_label'] = []
                report.note(f"cls: no image has a label of any of its {len(unlabelled)} "
                            "classes, so 'cls' is left out of metainfo.tasks")
            elif unlabelled:
                report.note(f'cls: no image has a label of {unlabelled} (null in every '
                            'image)')
        if 'loc' in tasks:
            boxed = {inst['bbox_label'] for e in items for inst in e['instances']}
            unboxed = [name for i, name in enumerate(self.det_classes) if i not in boxed]
            if unboxed:
                report.note(f'loc: no image has a box of {unboxed}')
        if 'seg' in tasks:
            masked = {name for e in items for name in e['seg']}
            unmasked = [name for name in self.seg_classes if name not in masked]
            if unmasked:
                report.note(f'seg: no image has a mask of {unmasked}')
        return tuple(tasks)

    def _warn_if_one_patient(self, entries: Dict[str, dict]) -> None:
        """Warn when one patient id holds many images (e.g. ids blanked by anonymisation):
        they all go to one split."""
        if not entries:
            return
        patient, count = Counter(e['patient_id'] for e in entries.values()).most_common(1)[0]
        if count >= 50 and count > 0.2 * len(entries):
            print_log(f'{self.dataset}: patient id {patient!r} holds {count} of {len(entries)} '
                      'images; they all go to one split (anonymised ids?)', logger='current',
                      level=logging.WARNING)

    def _check_output(self) -> str:
        """Refuse to replace earlier output without ``overwrite``; the result cache folder
        (an existing one means an interrupted run, resumed)."""
        folder = self.partial_dir
        existing = [p for p in [self.ann_file(s) for s in SPLITS] + [self.report_file]
                    if osp.exists(p)]
        if self.overwrite and osp.isdir(folder):
            shutil.rmtree(folder)
        elif osp.isdir(folder):
            print_log(f'{self.dataset}: resuming the interrupted conversion in {folder}',
                      logger='current')
        elif existing and not self.overwrite:
            raise FileExistsError(f'{existing[0]} already exists: pass --overwrite to '
                                  f'replace the conversion in {self.ann_dir}')
        return folder

    def _process_all(self, records: List[dict], cache: ResultCache,
                     report: ConversionReport) -> Dict[str, dict]:
        """Entries of all records, from the cache or by :meth:`process` (in parallel)."""
        entries: Dict[str, dict] = {}
        fingerprints: Dict[str, str] = {}
        todo = []
        for record in records:
            fingerprint = fingerprints[record['key']] = record_fingerprint(record)
            cached = cache.get(record['key'], fingerprint)
            if cached is None:
                todo.append(record)
            else:
                entries[record['key']] = cached
        if entries:
            report.count('images reused from the interrupted run', len(entries))
        if not todo:
            return entries
        print_log(f'{self.dataset}: decoding {len(todo)} images with {self.workers} '
                  f'worker(s)', logger='current')
        bar = ProgressBar(len(todo), file=sys.stdout)
        try:
            if self.workers > 1:
                chunksize = max(1, min(16, len(todo) // (self.workers * 4)))
                with Pool(self.workers, initializer=_init_worker, initargs=(self,)) as pool:
                    self._collect_results(
                        pool.imap_unordered(_process_in_worker, todo, chunksize),
                        fingerprints, cache, report, entries, bar)
            else:
                self._collect_results(map(self.process, todo), fingerprints, cache, report,
                                      entries, bar)
        finally:  # end the bar's line: what is logged next starts a line of its own
            bar.file.write('\n')
            bar.file.flush()
        return entries

    @staticmethod
    def _collect_results(results, fingerprints, cache, report, entries, bar) -> None:
        for key, entry, reason in results:
            if entry is None:
                report.skip(key, reason)
            else:
                entries[key] = entry
                cache.add(key, fingerprints[key], entry)
            bar.update()

    # ------------------------------------------------------------------ CLI
    @classmethod
    def build_parser(cls) -> argparse.ArgumentParser:
        """The command line: the common options plus :meth:`add_arguments`."""
        parser = argparse.ArgumentParser(
            description=(cls.__doc__ or '').strip().splitlines()[0],
            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add_common_arguments(parser)
        cls.add_arguments(parser)
        return parser

    @classmethod
    def main(cls, argv: Optional[Sequence[str]] = None) -> int:
        """Run the converter from the command line.

        Returns:
            int: Exit status: 0 when images were converted, 1 when none was, 2 when the
            dataset folder or tables are missing or earlier output is in the way.

        Raises:
            SystemExit: 143 after a SIGTERM, 130 after Ctrl-C, with a message saying how to
                resume (:func:`resume_hint_on_interrupt`).
        """
        args = cls.build_parser().parse_args(argv)
        try:
            converter = cls(**vars(args))
            with resume_hint_on_interrupt(converter.resume_hint):
                report = converter.run()
        except (FileExistsError, FileNotFoundError) as err:
            print_log(f'{cls.__name__}: {err}', logger='current', level=logging.ERROR)
            return 2
        return 0 if report.converted else 1

    def resume_hint(self) -> str:
        """What an interrupted run kept, and how to resume it (see :meth:`main`)."""
        again = 'the same command again' + (' without --overwrite' if self.overwrite else '')
        if not osp.isdir(self.partial_dir):
            return f'{self.dataset}: no image was finished yet; run {again} to start'
        return (f'{self.dataset}: the images finished so far are kept in {self.partial_dir}; '
                f'run {again} to resume the conversion where it stopped')
