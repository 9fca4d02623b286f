"""Decoders of the two run-length encodings found in the official CXR tables.

- SIIM-ACR / CANDID-PTX (``EncodedPixels``): ``"offset length offset length ..."`` where each
  offset counts the pixels *between the end of the previous run and the start of this run*
  (the first offset from pixel 0), pixels numbered *column-major* (down the first column,
  then the next); ``-1`` means an empty mask. An image may have several rows (one per
  component, not necessarily adjacent in the file); their masks are merged.
- CheXmask: ``"start length start length ..."`` with *1-indexed absolute* starts, pixels
  numbered *row-major*, with the grid given by the table's ``Height``/``Width``.

Both raise :class:`ValueError` on malformed text or runs that leave the image.
"""
from typing import Iterable, Tuple

import numpy as np


def _pairs(text: str, what: str) -> np.ndarray:
    """Parse ``"a b c d ..."`` into an int64 array of shape (N, 2)."""
    try:
        values = np.array([int(v) for v in text.split()], dtype=np.int64)
    except ValueError:
        raise ValueError(f'{what}: RLE must hold whole numbers, got {text[:60]!r}') from None
    if values.size % 2:
        raise ValueError(f'{what}: RLE has an odd number of values ({values.size}); '
                         'expected (position, length) pairs')
    return values.reshape(-1, 2)


def _fill(runs: np.ndarray, height: int, width: int, what: str) -> np.ndarray:
    """Flat 0-indexed (start, length) runs -> flat uint8 mask of ``height * width``."""
    total = height * width
    flat = np.zeros(total, dtype=np.uint8)
    if not runs.size:
        return flat
    starts, lengths = runs[:, 0], runs[:, 1]
    if (lengths <= 0).any():
        raise ValueError(f'{what}: RLE run length must be > 0, got {int(lengths.min())}')
    if (starts < 0).any():
        raise ValueError(f'{what}: RLE run starts before the first pixel')
    ends = starts + lengths
    if ends.max() > total:
        raise ValueError(f'{what}: RLE overruns the image: a run ends at pixel '
                         f'{int(ends.max())} but the {height}x{width} image has {total}')
    # +1 at each start, -1 at each end; a pixel is set where the running sum is > 0
    delta = np.zeros(total + 1, dtype=np.int64)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    flat[np.cumsum(delta[:-1]) > 0] = 1
    return flat


def decode_siim_rle(text: str, height: int, width: int, what: str = 'EncodedPixels') -> np.ndarray:
    """Decode one SIIM-style ``EncodedPixels`` value (relative offsets, column-major).

    Args:
        text (str): ``"-1"`` (empty) or ``"offset length offset length ..."``.
        height (int): Image height H.
        width (int): Image width W.
        what (str): Names the value in error messages (e.g. ``'train-rle.csv line 7'``).

    Returns:
        np.ndarray: uint8 mask of 0/1, shape (H, W).

    Raises:
        ValueError: Non-integer values, an odd count, a negative offset, a length <= 0, or a
            run past the last pixel.
    """
    text = text.strip()
    if text in ('-1', ''):
        return np.zeros((height, width), dtype=np.uint8)
    pairs = _pairs(text, what)
    offsets, lengths = pairs[:, 0], pairs[:, 1]
    if (offsets < 0).any():
        raise ValueError(f'{what}: RLE offset must be >= 0, got {int(offsets.min())}')
    # start_i = sum of the offsets up to i + sum of the lengths before i
    starts = np.cumsum(offsets) + np.concatenate(([0], np.cumsum(lengths)[:-1]))
    flat = _fill(np.stack([starts, lengths], axis=1), height, width, what)
    return flat.reshape(width, height).T.copy()  # column-major


def decode_siim_rles(rows: Iterable[Tuple[str, str]], height: int, width: int) -> np.ndarray:
    """Merge (logical OR) the masks of all rows of one image; see :func:`decode_siim_rle`.

    Args:
        rows (Iterable[tuple[str, str]]): ``(what, text)`` per table row: ``what`` names that
            row (file and line) in error messages.
        height (int): Image height.
        width (int): Image width.

    Returns:
        np.ndarray: uint8 mask of 0/1, shape (H, W).
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    for what, text in rows:
        mask |= decode_siim_rle(text, height, width, what)
    return mask


def decode_chexmask_rle(text: str, height: int, width: int,
                        what: str = 'CheXmask RLE') -> np.ndarray:
    """Decode one CheXmask RLE (1-indexed absolute starts, row-major).

    Args:
        text (str): ``"start length start length ..."``; empty for an empty mask.
        height (int): The table's ``Height``.
        width (int): The table's ``Width``.
        what (str): Names the value in error messages.

    Returns:
        np.ndarray: uint8 mask of 0/1, shape (H, W).

    Raises:
        ValueError: Non-integer values, an odd count, a start < 1, a length <= 0, or a run
            past the last pixel.
    """
    pairs = _pairs(text.strip(), what)
    if pairs.size and (pairs[:, 0] < 1).any():
        raise ValueError(f'{what}: CheXmask RLE starts are 1-indexed, got {int(pairs[:, 0].min())}')
    runs = pairs - np.array([1, 0])  # to 0-indexed starts
    return _fill(runs, height, width, what).reshape(height, width)
