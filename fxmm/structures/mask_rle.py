"""Binary masks <-> COCO run-length encoding (the ``seg`` field of fxmm annotation files).

Encoding and decoding are pycocotools'. pycocotools does not check the run lengths of a
compressed RLE against its ``size`` (a too-short RLE decodes into uninitialised memory), so
:func:`rle_run_lengths` reads the counts string (the LEB128-like code of pycocotools'
``rleToString``) to check it before anything is decoded.

Masks are (H, W) arrays of 0/1 in the image's pixel grid; an RLE's ``size`` is ``[H, W]``.
"""
from typing import Optional

import cv2
import numpy as np
from pycocotools import mask as mask_util
from scipy import ndimage

# characters of pycocotools' compressed counts: 6-bit groups offset by 48 ('0'..'o')
_CHAR_MIN, _CHAR_MAX = 48, 48 + 63


def encode_mask(mask: np.ndarray) -> dict:
    """Encode one binary mask as a COCO RLE whose ``counts`` is a str (JSON-ready).

    Args:
        mask (np.ndarray): bool or integer array, shape (H, W), values 0/1.

    Returns:
        dict: ``{'size': [H, W], 'counts': str}``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'a mask must have shape (H, W), got shape {mask.shape}')
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError(f'a mask must be binary (0/1), got values {np.unique(mask)[:8]}')
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(rle['size'][0]), int(rle['size'][1])],
            'counts': rle['counts'].decode('ascii')}


def rle_run_lengths(rle: dict,
                    height: Optional[int] = None,
                    width: Optional[int] = None) -> np.ndarray:
    """Check a COCO RLE and return its run lengths (alternating 0-runs and 1-runs).

    Args:
        rle (dict): ``{'size': [h, w], 'counts': str or bytes}`` (compressed COCO RLE).
        height (int, optional): the image height the mask must have.
        width (int, optional): the image width the mask must have.

    Returns:
        np.ndarray: int64 run lengths, shape (R,), starting with a run of zeros, summing to
        h * w (column-major pixel order).

    Raises:
        ValueError: naming what is wrong (keys, size, a size that differs from the image,
            characters of counts, negative runs, runs that do not add up to h * w).
    """
    if not isinstance(rle, dict) or set(rle) != {'size', 'counts'}:
        got = f'keys {sorted(rle)}' if isinstance(rle, dict) else type(rle).__name__
        raise ValueError(f'an RLE must be a dict with the keys "size" and "counts", got {got}')
    size = rle['size']
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in size)):
        raise ValueError(f'RLE size must be [height, width] of non-negative ints, got {size!r}')
    if (height is not None and size[0] != height) or (width is not None and size[1] != width):
        raise ValueError(f'RLE size {list(size)} does not match the image size [{height}, {width}]')
    counts = rle['counts']
    if isinstance(counts, str):
        if not counts.isascii():
            raise ValueError('RLE counts has non-ASCII characters')
        counts = counts.encode('ascii')
    if not isinstance(counts, bytes):
        raise ValueError(f'RLE counts must be a compressed str, got {type(counts).__name__}')
    runs = _counts_to_runs(counts)
    if (runs < 0).any():
        raise ValueError(f'RLE counts decodes to a negative run length ({int(runs.min())})')
    if runs.sum() != size[0] * size[1]:
        raise ValueError(f'RLE counts cover {int(runs.sum())} pixels, but size {list(size)} '
                         f'has {size[0] * size[1]}')
    return runs


def _counts_to_runs(counts: bytes) -> np.ndarray:
    """Read pycocotools' compressed counts (see ``rleFrString`` in its maskApi.c).

    Each number is written in 5-bit groups, least significant first, as characters
    ``48 + group`` with bit 0x20 meaning "more groups follow" and bit 0x10 of the last group
    the sign; from the third number on, a number is the difference to the run two before.

    Args:
        counts (bytes): the compressed counts.

    Returns:
        np.ndarray: int64 run lengths, shape (R,) (not yet checked for sign or total).
    """
    codes = np.frombuffer(counts, dtype=np.uint8).astype(np.int64)
    bad = (codes < _CHAR_MIN) | (codes > _CHAR_MAX)
    if bad.any():
        pos = int(np.argmax(bad))
        raise ValueError(f'RLE counts has an invalid character {counts[pos:pos + 1]!r} at '
                         f'position {pos} (allowed: "0" to "o")')
    if not codes.size:
        return codes
    codes -= _CHAR_MIN
    more = (codes & 0x20) != 0
    if more[-1]:
        raise ValueError('RLE counts is truncated (its last character continues a number)')
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 12:
        raise ValueError('RLE counts holds a number too large for any image')
    shift = 5 * (np.arange(codes.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((codes & 0x1F) << shift, starts)
    negative = (codes[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * lengths[negative])
    runs = values.copy()
    runs[2::2] = np.cumsum(values[2::2])
    if values.size > 3:
        runs[3::2] = values[1] + np.cumsum(values[3::2])
    return runs


def decode_mask(rle: dict, height: Optional[int] = None, width: Optional[int] = None) -> np.ndarray:
    """Decode a COCO RLE (checked by :func:`rle_run_lengths`) into a binary mask.

    Args:
        rle (dict): ``{'size': [h, w], 'counts': str or bytes}``.
        height (int, optional): the image height; a different RLE height is an error.
        width (int, optional): the image width; a different RLE width is an error.

    Returns:
        np.ndarray: uint8 mask of 0/1, shape (H, W), C-contiguous.
    """
    rle_run_lengths(rle, height, width)
    counts = rle['counts']
    if isinstance(counts, str):
        counts = counts.encode('ascii')
    mask = mask_util.decode({'size': list(rle['size']), 'counts': counts})
    return np.ascontiguousarray(mask)


def decode_mask_sampled(rle: dict, rows: np.ndarray, cols: np.ndarray,
                        height: Optional[int] = None, width: Optional[int] = None) -> np.ndarray:
    """The pixels ``(rows[i], cols[j])`` of a COCO RLE's mask, without decoding the whole mask.

    Works on the runs: the mask's value flips at every run end (column-major pixel order), so
    each sampled column starts with the parity of the run ends before it and flips at the
    sampled rows past each run end inside it; the output is written as those constant
    segments. The cost grows with the runs and the output,
    not with the mask: a 3072 x 2560 mask sampled at 512 x 427 costs what a 512 px one does.

    Args:
        rle (dict): ``{'size': [H, W], 'counts': str or bytes}`` (checked by
            :func:`rle_run_lengths`).
        rows (np.ndarray): int row indices in [0, H), non-decreasing, shape (h,).
        cols (np.ndarray): int column indices in [0, W), shape (w,).
        height (int, optional): the image height; a different RLE height is an error.
        width (int, optional): the image width; a different RLE width is an error.

    Returns:
        np.ndarray: uint8 0/1, shape (h, w): ``decode_mask(rle)[rows][:, cols]``.
    """
    runs = rle_run_lengths(rle, height, width)
    h_full = rle['size'][0]
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    ends = np.cumsum(runs)[:-1]  # the value flips at these pixel indices
    starts = cols * h_full
    first = np.searchsorted(ends, starts, side='right')  # flips up to a column's first pixel
    last = np.searchsorted(ends, starts + h_full, side='left')  # flips before the next column
    counts = last - first
    column = np.repeat(np.arange(len(cols)), counts)  # the output column of each flip inside
    flips = ends[np.repeat(first, counts) + np.arange(counts.sum())
                 - np.repeat(np.cumsum(counts) - counts, counts)]
    at_row = np.searchsorted(rows, flips - starts[column], side='left')
    inside = at_row < len(rows)  # a flip past the last sampled row changes no output pixel
    column, at_row = column[inside], at_row[inside]
    # the output, column-major, is a sequence of constant segments: flip events at
    # column * h + row, plus one at a column's start where its first value differs from the
    # previous column's last; events at the same place cancel in pairs
    h, w = len(rows), len(cols)
    start = (first & 1).astype(np.int64)
    end = start ^ (np.bincount(column, minlength=w) & 1)
    restart = np.flatnonzero(start[1:] != end[:-1]) + 1
    events, times = np.unique(np.concatenate((column * h + at_row, restart * h)),
                              return_counts=True)
    events = events[times & 1 == 1]
    lengths = np.diff(np.concatenate(([0], events, [h * w])))
    values = ((start[0] + np.arange(len(lengths))) & 1).astype(np.uint8)
    return cv2.transpose(np.repeat(values, lengths).reshape(w, h))  # numpy's is 10x slower


def masks_to_boxes(mask: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """Bounding boxes of the connected components of a binary mask (scipy.ndimage.label).

    Args:
        mask (np.ndarray): binary mask, shape (H, W).
        connectivity (int): 4 (edge neighbours) or 8 (edge and corner neighbours).

    Returns:
        np.ndarray: float32 boxes ``[x1, y1, x2, y2]`` in pixel-edge coordinates (a single
        pixel at column c, row r is ``[c, r, c + 1, r + 1]``), shape (N, 4), one per
        component in raster order of their first pixel.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f'a mask must have shape (H, W), got shape {mask.shape}')
    if connectivity not in (4, 8):
        raise ValueError(f'connectivity must be 4 or 8, got {connectivity}')
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, _ = ndimage.label(mask != 0, structure=structure)
    boxes = [[cols.start, rows.start, cols.stop, rows.stop]
             for rows, cols in ndimage.find_objects(labels)]
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
