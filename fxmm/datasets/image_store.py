"""A prepared image store: images decoded once, reduced, kept as raw integers in one file.

Reading a 16-bit PNG costs 8 ms at 512 px and 100 ms at 2048 px, a MIMIC-size JPEG 40 ms;
reading the same image's raw pixels at 512 px costs a file read (docs/datasets.md,
"Preparing images", has the measurements). A store holds every image of some annotation
files, each reduced to a long side (e.g. 512 px for training at 224 px), in its stored
integer type, and is written by :mod:`fxmm.datasets.prepare_store`
(``tools/prepare_images.py``). A folder::

    <store>/fxmm_store.json   format, version and the options it was prepared with
    <store>/pixels.bin        the images' pixels back to back: C order, little endian
    <store>/records.jsonl     one JSON line per image, appended once its pixels are written
    <store>/index.npy         the records as one array sorted by key hash (what readers use)

A record's key is the image's ``img_path`` in its annotation file (relative to the data
root). The store mirrors the data root: the image of key ``k`` is *named*
``<store>/<k>``, a path that :func:`fxmm.datasets.image_io.read_cxr_image` resolves through
the store (no file of that name exists). Pointing a dataset's ``data_prefix`` at the store
is therefore all a config changes (``image_store`` in ``configs/_base_/datasets/``).

Each image keeps what the loader needs to give what the original gives: the original size
(so boxes, masks and ``ori_shape`` stay in original pixels), the linear map from the stored
values to the intensities (DICOM Rescale, MONOCHROME1 inversion, JSRT's inverted 12 bits, or
the quantisation of an image a LUT made non-linear), the minimum and maximum of the whole
original image (the min-max normalisation is the original's), and the pixel spacing.
"""
import fcntl
import hashlib
import io
import json
import os
import os.path as osp
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from fxmm.utils.atomic_io import atomic_write_bytes
from .image_io import CXRImageError

#: the file that makes a folder a store
MARKER = 'fxmm_store.json'
FORMAT, VERSION = 'fxmm-image-store', 1
PIXELS, RECORDS, INDEX, LOCK = 'pixels.bin', 'records.jsonl', 'index.npy', '.lock'
#: stored types: the code kept in the index -> numpy type
DTYPES = {1: np.dtype('<u1'), 2: np.dtype('<u2')}
_TEXT = 16  # characters of the text fields of the index (photometric, source format)
INDEX_DTYPE = np.dtype([
    ('hash', '<u8'), ('offset', '<u8'), ('height', '<u4'), ('width', '<u4'),
    ('ori_height', '<u4'), ('ori_width', '<u4'), ('dtype', 'u1'), ('bits_stored', '<i2'),
    ('slope', '<f8'), ('intercept', '<f8'), ('low', '<f8'), ('high', '<f8'),
    ('spacing', '<f8', (2, )), ('photometric', f'<U{_TEXT}'), ('source_format', f'<U{_TEXT}')])


def key_hash(key: str) -> int:
    """The 64-bit hash of a record key that the index is sorted by."""
    return int.from_bytes(hashlib.blake2b(key.encode('utf-8'), digest_size=8).digest(), 'little')


def normalise_key(key: str) -> str:
    """A key as the store keeps it: a normalised relative path with ``/`` separators."""
    return osp.normpath(key).replace(os.sep, '/')


def _read_marker(folder: str) -> dict:
    path = osp.join(folder, MARKER)
    with open(path, encoding='utf-8') as f:
        info = json.load(f)
    if not isinstance(info, dict) or info.get('format') != FORMAT:
        raise ValueError(f'{path}: not an fxmm image store marker')
    if info.get('version') != VERSION:
        raise ValueError(f'{path}: image store version {info.get("version")}, this fxmm reads '
                         f'version {VERSION}; prepare the images again')
    return info


class ImageStore:
    """Read the images of a store folder (one per process and folder: :func:`open_store`).

    The index is memory-mapped (the pages are shared by the DataLoader workers of a
    process) and an image is one ``os.pread`` of its pixels, safe in forked workers.

    Args:
        folder (str): the store folder.

    Raises:
        CXRImageError: naming the folder, when it has no index (its preparation has not
            finished) or a marker of another format or version.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        try:
            self.info = _read_marker(folder)
            self.index = np.load(osp.join(folder, INDEX), mmap_mode='r')
        except FileNotFoundError as err:
            raise CXRImageError(folder, f'image store without {osp.basename(err.filename)}: '
                                'its preparation has not finished; run tools/prepare_images.py '
                                'again') from None
        except ValueError as err:
            raise CXRImageError(folder, f'not a readable image store: {err}') from None
        if self.index.dtype != INDEX_DTYPE:
            raise CXRImageError(folder, f'{INDEX} has fields {self.index.dtype}, not those of '
                                f'store version {VERSION}')
        self._fd, self._fd_pid = None, None

    def __len__(self) -> int:
        return len(self.index)

    def _pixels_fd(self) -> int:
        if self._fd_pid != os.getpid():  # a forked worker: its own descriptor
            self._fd = os.open(osp.join(self.folder, PIXELS), os.O_RDONLY)
            self._fd_pid = os.getpid()
        return self._fd

    def lookup(self, key: str) -> Optional[np.void]:
        """The index row of ``key`` (a relative path), None when the store lacks it."""
        hashes = self.index['hash']
        h = np.uint64(key_hash(normalise_key(key)))
        i = int(np.searchsorted(hashes, h))
        return self.index[i] if i < len(hashes) and hashes[i] == h else None

    def read(self, key: str) -> Tuple[np.ndarray, dict]:
        """Read the image of ``key``.

        Returns:
            tuple[np.ndarray, dict]: the stored values, uint8 or uint16 (h, w), and the meta
            of :func:`fxmm.datasets.image_io.read_cxr_image`: ``stored_map`` (slope,
            intercept), ``value_range`` (min, max of the whole original image's stored
            values), ``original_shape`` (H, W), ``scale`` (w / W, h / H), ``pixel_spacing``
            of the original (row, col mm or None), ``photometric``, ``bits_stored``.

        Raises:
            CXRImageError: the store has no image of that key, or its pixels are cut short.
        """
        row = self.lookup(key)
        path = osp.join(self.folder, key)
        if row is None:
            raise CXRImageError(path, f'not in the image store {self.folder} (its preparation '
                                'skipped the image, see prepare_report.json, or did not cover '
                                'this annotation file)')
        dtype = DTYPES[int(row['dtype'])]
        height, width = int(row['height']), int(row['width'])
        size = height * width * dtype.itemsize
        data = os.pread(self._pixels_fd(), size, int(row['offset']))
        if len(data) != size:
            raise CXRImageError(path, f'image store {self.folder}: {PIXELS} ends after '
                                f'{len(data)} of the image\'s {size} bytes (truncated)')
        img = np.frombuffer(data, dtype).reshape(height, width)
        ori = int(row['ori_height']), int(row['ori_width'])
        spacing = tuple(float(s) for s in row['spacing'])
        return img, dict(
            pixel_spacing=None if np.isnan(spacing).any() else spacing,
            photometric=str(row['photometric']), bits_stored=int(row['bits_stored']) or None,
            stored_map=(float(row['slope']), float(row['intercept'])),
            value_range=(float(row['low']), float(row['high'])),
            original_shape=ori, scale=(width / ori[1], height / ori[0]))


# store folders opened by this process (a forked worker inherits them)
_OPEN: Dict[str, ImageStore] = {}
_OPEN_LOCK = threading.Lock()


def open_store(folder: str) -> ImageStore:
    """The :class:`ImageStore` of ``folder``, opened once per process."""
    folder = osp.abspath(folder)
    with _OPEN_LOCK:
        store = _OPEN.get(folder)
        if store is None:
            store = _OPEN[folder] = ImageStore(folder)
        return store


def find_store(path: str) -> Optional[Tuple[ImageStore, str]]:
    """The store a path names an image of, and the image's key.

    A path ``<store>/<key>`` names the store's image of ``key`` (the store folder holds
    :data:`MARKER`). Stores already opened are matched by prefix; otherwise the parent
    folders of ``path`` are searched for the marker.

    Returns:
        tuple[ImageStore, str] | None: None when no parent folder is a store.
    """
    path = osp.abspath(path)
    for folder, store in list(_OPEN.items()):
        if path.startswith(folder + os.sep):
            return store, osp.relpath(path, folder)
    folder = osp.dirname(path)
    while True:
        if osp.isfile(osp.join(folder, MARKER)):
            return open_store(folder), osp.relpath(path, folder)
        parent = osp.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _lock(folder: str):
    """An exclusive lock on the store folder (one writer at a time), held by the open file."""
    handle = open(osp.join(folder, LOCK), 'w')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(f'{folder}: another tools/prepare_images.py run is writing this '
                           'image store') from None
    return handle


class StoreWriter:
    """Append images to a store folder; resumable after a kill at any point.

    Pixels are appended to :data:`PIXELS`; every ``commit_every`` images (and on
    :meth:`close`) they are flushed to disk, then their records are appended to
    :data:`RECORDS`, so a record never names pixels that a crash could lose. Opening a
    folder again reads the records, truncates the pixels after the last record (the part
    of a killed append) and continues; :meth:`close` writes the index atomically.

    Args:
        folder (str): the store folder; created if missing.
        options (dict): what the images depend on (e.g. ``max_side``); a folder prepared
            with other options is refused.
        commit_every (int): images between two commits. Defaults to 64.

    Raises:
        FileExistsError: the folder holds a store prepared with other options.
        RuntimeError: another writer holds the folder.
    """

    def __init__(self, folder: str, options: dict, commit_every: int = 64) -> None:
        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self._lock = _lock(folder)
        options = json.loads(json.dumps(options))
        marker = osp.join(folder, MARKER)
        if osp.isfile(marker):
            info = _read_marker(folder)
            if info.get('options') != options:
                self._lock.close()
                raise FileExistsError(
                    f'{folder} holds images prepared with {info.get("options")}, not '
                    f'{options}; choose another store folder or pass --overwrite')
        else:
            atomic_write_bytes(json.dumps(dict(format=FORMAT, version=VERSION,
                                               options=options)).encode('utf-8'), marker)
        self.records: Dict[str, dict] = dict(self._read_records())
        end = max((r['offset'] + _nbytes(r) for r in self.records.values()), default=0)
        pixels = osp.join(folder, PIXELS)
        if end > (osp.getsize(pixels) if osp.isfile(pixels) else 0):
            self._lock.close()
            raise FileExistsError(f'{pixels} is shorter than its records say (a damaged '
                                  'store); pass --overwrite to prepare it again')
        self._pixels = open(pixels, 'ab')
        self._pixels.truncate(end)  # drop the part of an append a kill cut short
        self._records = open(osp.join(folder, RECORDS), 'a', encoding='utf-8')
        if self._records.tell() and not _ends_with_newline(self._records.name):
            self._records.write('\n')  # after a torn last line
        self._end = end
        self._pending: List[dict] = []
        self.commit_every = commit_every
        self._last_commit = time.monotonic()

    def _read_records(self) -> Iterator[Tuple[str, dict]]:
        path = osp.join(self.folder, RECORDS)
        if not osp.isfile(path):
            return
        with open(path, encoding='utf-8') as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn by a kill
                if isinstance(record, dict) and 'key' in record:
                    yield record['key'], record

    def add(self, key: str, pixels: np.ndarray, meta: dict) -> None:
        """Append one image.

        Args:
            key (str): its key (relative path in the annotation files).
            pixels (np.ndarray): uint8 or uint16 (h, w).
            meta (dict): ``original_shape``, ``stored_map``, ``value_range``,
                ``pixel_spacing``, ``photometric``, ``bits_stored``, ``source_format`` and
                anything else to keep in the record (e.g. the source's size and mtime).
        """
        if pixels.dtype.itemsize not in DTYPES or pixels.dtype.kind != 'u' or pixels.ndim != 2:
            raise ValueError(f'{key}: a store keeps uint8/uint16 (h, w) pixels, got '
                             f'{pixels.dtype} {pixels.shape}')
        data = np.ascontiguousarray(pixels, DTYPES[pixels.dtype.itemsize]).tobytes()
        self._pixels.write(data)
        record = dict(meta, key=normalise_key(key), offset=self._end,
                      shape=list(pixels.shape), dtype=pixels.dtype.itemsize)
        self._end += len(data)
        self._pending.append(record)
        if (len(self._pending) >= self.commit_every
                or time.monotonic() - self._last_commit > 30):
            self.commit()

    def commit(self) -> None:
        """Make the images added so far durable: pixels first, then their records."""
        if not self._pending:
            return
        self._pixels.flush()
        os.fsync(self._pixels.fileno())
        for record in self._pending:
            self._records.write(json.dumps(record) + '\n')
            self.records[record['key']] = record
        self._records.flush()
        os.fsync(self._records.fileno())
        self._pending = []
        self._last_commit = time.monotonic()

    def close(self) -> str:
        """Commit, write the index atomically, release the folder; returns the index path."""
        try:
            self.commit()
            self._pixels.close()
            self._records.close()
            path = osp.join(self.folder, INDEX)
            buffer = io.BytesIO()
            np.save(buffer, build_index(self.records.values()))
            atomic_write_bytes(buffer.getvalue(), path)
            return path
        finally:
            self._lock.close()


def _nbytes(record: dict) -> int:
    return record['shape'][0] * record['shape'][1] * record['dtype']


def _ends_with_newline(path: str) -> bool:
    with open(path, 'rb') as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b'\n'


def build_index(records) -> np.ndarray:
    """The index of records (dicts of :meth:`StoreWriter.add`), sorted by key hash.

    Raises:
        ValueError: two keys share a hash (never seen; the store would be ambiguous).
    """
    records = list(records)
    index = np.zeros(len(records), INDEX_DTYPE)
    for row, r in zip(index, records):
        spacing = r.get('pixel_spacing')
        row['hash'] = key_hash(r['key'])
        row['offset'] = r['offset']
        row['height'], row['width'] = r['shape']
        row['ori_height'], row['ori_width'] = r['original_shape']
        row['dtype'] = r['dtype']
        row['bits_stored'] = r.get('bits_stored') or 0
        row['slope'], row['intercept'] = r['stored_map']
        row['low'], row['high'] = r['value_range']
        row['spacing'] = spacing if spacing is not None else (np.nan, np.nan)
        row['photometric'] = str(r.get('photometric', ''))[:_TEXT]
        row['source_format'] = str(r.get('source_format', ''))[:_TEXT]
    order = np.argsort(index['hash'], kind='stable')
    index = index[order]
    same = np.flatnonzero(index['hash'][1:] == index['hash'][:-1])
    if len(same):
        keys = [records[order[i]]['key'] for i in (same[0], same[0] + 1)]
        raise ValueError(f'image store keys {keys} share a 64-bit hash')
    return index
