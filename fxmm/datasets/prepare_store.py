"""Prepare an image store (:mod:`fxmm.datasets.image_store`) from annotation files.

Every image the annotation files name is decoded once (:func:`read_cxr_image`: DICOM LUTs,
MONOCHROME1, Bits Stored, every format), kept in its stored integers (8 or 16 bits; an
image a LUT made non-linear is quantised to 16 bits over its range), reduced by area
averaging so that its long side is at most ``max_side`` and appended to the store. The
annotation files are not changed: boxes and masks stay in original pixels, and the loader
maps them onto the stored image (``LoadCXRImage``, ``LoadCXRAnnotations``).

The run is resumable (images already in the store are kept, unless their source file
changed size or time since), parallel (``workers`` processes decode) and reports what it
skipped, with the reason, in ``<store>/prepare_report.json``.
"""
import json
import os
import os.path as osp
import shutil
import time
from collections import Counter
from multiprocessing import Pool
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from fxmm.utils.atomic_io import atomic_write_bytes
from .image_io import read_cxr_image
from .image_store import MARKER, StoreWriter, normalise_key

REPORT = 'prepare_report.json'
# errors that make one image unusable (CXRImageError is a ValueError); others are bugs
IMAGE_ERRORS = (ValueError, OSError, cv2.error)


def to_unsigned(img: np.ndarray, stored_map: Optional[Tuple[float, float]]
                ) -> Tuple[np.ndarray, Tuple[float, float]]:
    """An image as unsigned 8/16-bit values and the linear map back to its intensities.

    Args:
        img (np.ndarray): (H, W) stored integers (uint8 / uint16 / int16) with their map
            ``stored_map``, or float intensities (``stored_map`` None).
        stored_map (tuple[float, float], optional): (slope, intercept) of ``img``.

    Returns:
        tuple[np.ndarray, tuple[float, float]]: uint8 or uint16 (H, W) and (slope,
        intercept): intensity = slope * value + intercept. Unsigned values stay as they are,
        int16 is offset by 32768, whole-number floats within 0..65535 become integers, other
        floats are quantised over their min..max onto 0..65535.
    """
    if stored_map is not None and img.dtype.kind == 'u':
        return img, stored_map
    if stored_map is not None:  # int16
        slope, intercept = stored_map
        return (img.astype(np.int32) + 32768).astype(np.uint16), (slope,
                                                                  intercept - 32768 * slope)
    low, high = float(img.min()), float(img.max())
    if low >= 0 and high <= 65535 and np.array_equal(img, np.round(img)):
        return img.astype(np.uint8 if high <= 255 else np.uint16), (1., 0.)
    step = (high - low) / 65535
    if step == 0:
        return np.zeros(img.shape, np.uint16), (1., low)
    return np.round((img - low) / step).astype(np.uint16), (step, low)


def reduced_size(height: int, width: int, max_side: int) -> Tuple[int, int]:
    """(h, w) of an (H, W) image whose long side is brought down to ``max_side``."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def prepare_image(path: str, max_side: int) -> Tuple[np.ndarray, dict]:
    """Decode one image and reduce it for a store.

    Args:
        path (str): the image file.
        max_side (int): the long side of the stored image (a smaller image is kept whole).

    Returns:
        tuple[np.ndarray, dict]: the uint8/uint16 (h, w) pixels (area-averaged, rounded) and
        the record meta of :meth:`StoreWriter.add`: ``original_shape``, ``stored_map``,
        ``value_range`` (the full image's min and max), ``pixel_spacing``, ``photometric``,
        ``bits_stored``, ``source_format``.

    Raises:
        CXRImageError: the file cannot be read.
    """
    img, meta = read_cxr_image(path, keep_stored=True)
    values, stored_map = to_unsigned(img, meta['stored_map'])
    low, high, _, _ = cv2.minMaxLoc(values)
    height, width = values.shape
    size = reduced_size(height, width, max_side)
    if size != (height, width):
        values = cv2.resize(values, size[::-1], interpolation=cv2.INTER_AREA)
    spacing = meta['pixel_spacing']
    return values, dict(original_shape=[height, width], stored_map=[float(v) for v in stored_map],
                        value_range=[low, high],
                        pixel_spacing=None if spacing is None else [float(s) for s in spacing],
                        photometric=meta['photometric'], bits_stored=meta['bits_stored'],
                        source_format=meta['source_format'])


def _source_stamp(path: str) -> List[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def _prepare_job(job: tuple) -> tuple:
    """One image in a worker: ``(key, pixels, meta, None)`` or ``(key, None, None, reason)``."""
    key, path, expected, max_side = job
    start = time.perf_counter()
    try:
        pixels, meta = prepare_image(path, max_side)
        stamp = _source_stamp(path)
    except IMAGE_ERRORS as err:
        return key, None, None, f'{type(err).__name__}: {err}'
    if tuple(meta['original_shape']) != expected:
        return key, None, None, (f'decoded (H, W) = {tuple(meta["original_shape"])} but the '
                                 f'annotation says {expected}')
    meta.update(source=stamp, seconds=time.perf_counter() - start)
    return key, pixels, meta, None


def collect_images(ann_files: Sequence[str], data_root: Optional[str] = None
                   ) -> Tuple[str, Dict[str, tuple], Dict[str, str]]:
    """The images of annotation files: key -> (file, (height, width)), and what is skipped.

    Args:
        ann_files (Sequence[str]): fxmm annotation files of one data root.
        data_root (str, optional): the folder their ``img_path`` are relative to; None: the
            parent of their folder (``<data root>/annotations/<split>.json``, as the
            converters write them).

    Returns:
        tuple: the data root, ``{key: (path, (height, width))}`` and ``{key: reason}`` of the
        entries left out (absolute ``img_path``, sizes that differ between files).

    Raises:
        ValueError: the files have different data roots, or one is not an annotation file.
    """
    roots = {data_root or osp.dirname(osp.dirname(osp.abspath(f))) for f in ann_files}
    if len(roots) != 1:
        raise ValueError(f'annotation files of several data roots ({sorted(roots)}): prepare '
                         'one store per data root, or pass --data-root')
    root = roots.pop()
    images: Dict[str, tuple] = {}
    skipped: Dict[str, str] = {}
    for ann_file in ann_files:
        with open(ann_file, encoding='utf-8') as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get('data_list'), list):
            raise ValueError(f'{ann_file}: not an fxmm annotation file (no data_list)')
        for i, entry in enumerate(data['data_list']):
            img_path = entry.get('img_path') if isinstance(entry, dict) else None
            if not isinstance(img_path, str) or not img_path:
                skipped[f'{ann_file}[{i}]'] = 'no img_path'
                continue
            if osp.isabs(img_path):
                skipped[img_path] = ('absolute img_path: a data_prefix cannot point it into '
                                     'the store')
                continue
            key = normalise_key(img_path)
            size = (entry.get('height'), entry.get('width'))
            if key in images and images[key][1] != size:
                skipped[key] = f'(height, width) {images[key][1]} and {size} in different files'
            images.setdefault(key, (osp.join(root, key), size))
    for key in skipped:
        images.pop(key, None)
    return root, images, skipped


def prepare_images(ann_files: Sequence[str], store: Optional[str] = None, max_side: int = 512,
                   workers: int = 1, data_root: Optional[str] = None,
                   overwrite: bool = False) -> dict:
    """Prepare (or complete) the store of the images of ``ann_files``.

    Args:
        ann_files (Sequence[str]): annotation files of one data root.
        store (str, optional): the store folder; None: ``<data root>/prepared/<max_side>``.
        max_side (int): long side of the stored images. Defaults to 512.
        workers (int): decoding processes. Defaults to 1.
        data_root (str, optional): see :func:`collect_images`.
        overwrite (bool): remove an existing store (e.g. of another ``max_side``) first.

    Returns:
        dict: the report also written to ``<store>/prepare_report.json``: ``store``,
        ``options``, ``images`` (in the files), ``prepared`` (this run), ``reused``,
        ``skipped`` (key -> reason), ``seconds``, ``store_bytes``, ``source_formats``.

    Raises:
        FileExistsError: the store was prepared with other options and ``overwrite`` is
            False, or ``store`` is a folder that is not a store.
    """
    root, images, skipped = collect_images(ann_files, data_root)
    store = store or osp.join(root, 'prepared', str(max_side))
    if overwrite and osp.isdir(store):
        if not osp.isfile(osp.join(store, MARKER)) and os.listdir(store):
            raise FileExistsError(f'{store} is not an image store; not removing it')
        shutil.rmtree(store)
    start = time.perf_counter()
    writer = StoreWriter(store, dict(max_side=max_side))
    todo, reused = [], 0
    for key, (path, size) in images.items():
        record = writer.records.get(key)
        try:
            fresh = record is not None and record.get('source') == _source_stamp(path)
        except OSError:
            fresh = False  # the source is gone: try it, and report why it fails
        if fresh:
            reused += 1
        else:
            todo.append((key, path, size, max_side))
    print_log(f'prepare_images: {len(images)} images of {len(ann_files)} annotation files, '
              f'{reused} already in {store}, {len(todo)} to prepare with {workers} worker(s)',
              logger='current')
    formats = Counter()
    try:
        bar = ProgressBar(len(todo)) if todo else None
        if workers > 1 and todo:
            with Pool(workers) as pool:
                chunksize = max(1, min(8, len(todo) // (workers * 4)))
                _collect(pool.imap_unordered(_prepare_job, todo, chunksize), writer, skipped,
                         formats, bar)
        else:
            _collect(map(_prepare_job, todo), writer, skipped, formats, bar)
    finally:
        writer.close()
    report = dict(store=store, options=dict(max_side=max_side), ann_files=list(ann_files),
                  images=len(images), prepared=sum(formats.values()), reused=reused,
                  skipped=skipped, seconds=time.perf_counter() - start,
                  store_bytes=osp.getsize(osp.join(store, 'pixels.bin')),
                  source_formats=dict(formats))
    atomic_write_bytes(json.dumps(report, indent=1).encode('utf-8'), osp.join(store, REPORT))
    print_log(f'prepare_images: {report["prepared"]} prepared, {reused} reused, '
              f'{len(skipped)} skipped (reasons in {osp.join(store, REPORT)}), '
              f'{report["store_bytes"] / 2**20:.1f} MiB in {store}', logger='current')
    return report


def _collect(results, writer: StoreWriter, skipped: Dict[str, str], formats: Counter,
             bar: Optional[ProgressBar]) -> None:
    for key, pixels, meta, reason in results:
        if pixels is None:
            skipped[key] = reason
            writer.records.pop(key, None)  # an older copy of a source that changed
        else:
            writer.add(key, pixels, meta)
            formats[meta['source_format']] += 1
        bar.update()
