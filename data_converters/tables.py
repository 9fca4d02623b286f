"""Reading the official annotation tables (CSV, plain or gzipped), lists and JSON files.

Real tables are messy: headers with stray spaces (SIIM's ``' EncodedPixels'``), quoted
multi-line text fields (CANDID-PTX reports), a UTF-8 byte-order mark, trailing commas,
``.csv.gz`` (MIMIC-CXR). :func:`read_table` reads them with Python's csv parser; a row with a
wrong number of fields is reported and skipped, every other row is yielded with its line
number so that later errors can name it. Trailing empty fields (NIH's header
``Image Index,Finding Label,Bbox [x,y,w,h],,,``, whose rows may or may not end in ``,,,``)
do not count.
"""
import csv
import gzip
import json
import math
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .report import ConversionReport


def open_text(path: str):
    """Open a text file for the csv module (``newline=''``), gunzipping ``.gz`` files and
    dropping a UTF-8 byte-order mark."""
    if path.endswith('.gz'):
        return gzip.open(path, 'rt', encoding='utf-8-sig', newline='')
    return open(path, encoding='utf-8-sig', newline='')


def read_table(path: str,
               columns: Sequence[str],
               report: ConversionReport,
               key_column: Optional[str] = None) -> Iterator[Tuple[int, Dict[str, str]]]:
    """Yield the rows of a CSV file as ``(line, {column: value})`` with names and values
    stripped of surrounding spaces.

    Args:
        path (str): The CSV file (``.csv`` or ``.csv.gz``).
        columns (Sequence[str]): Columns the file must have (after stripping).
        report (ConversionReport): Where malformed rows are recorded.
        key_column (str, optional): Column naming the item a row belongs to (e.g. the image
            id). A malformed row is reported under that item when its value can be read, so
            the converter drops the whole item rather than converting it with a row missing.

    Yields:
        tuple[int, dict]: The line number where the row starts (1 = header) and the row.

    Raises:
        ValueError: The file has no header or lacks one of ``columns``.
    """
    name = osp.basename(path)
    with open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f'{path}: empty file, expected a header with {list(columns)}')
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f'{path}: missing column(s) {missing}; the header has {header}')
        header = header[:_count_fields(header)]
        key_index = header.index(key_column) if key_column else None
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if _count_fields(fields, len(header)) != len(header):
                key = (fields[key_index].strip() if key_index is not None
                       and key_index < len(fields) else f'{name}:{line}')
                report.skip(key, f'{name} line {line}: malformed row with {len(fields)} '
                            f'fields, the header has {len(header)}')
                continue
            yield line, {h: v.strip() for h, v in zip(header, fields)}


def _count_fields(fields: List[str], at_least: int = 0) -> int:
    """The number of fields less the trailing empty ones, but not below ``at_least`` (a
    row's empty values of named columns count)."""
    n = len(fields)
    while n > at_least and not fields[n - 1].strip():
        n -= 1
    return n


def read_json(path: str, kind: type, keys: Sequence[str] = (),
              key_kind: Optional[type] = None) -> Any:
    """An official JSON annotation file, checked to be a ``kind`` with the ``keys`` it needs.

    Args:
        path (str): The JSON file.
        kind (type): ``dict`` or ``list``: what the file must hold.
        keys (Sequence[str]): Keys the dict must have.
        key_kind (type, optional): What each of ``keys`` must hold (e.g. ``list``).

    Raises:
        ValueError: Not valid JSON, or not what is expected; the message names the file.
    """
    try:
        with open(path, encoding='utf-8-sig') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f'{path}: not a valid JSON file ({err})') from None
    if not isinstance(data, kind):
        raise ValueError(f'{path}: expected a JSON {kind.__name__}, got {type(data).__name__}')
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f'{path}: missing key(s) {missing}')
    wrong = [k for k in keys if key_kind is not None and not isinstance(data[k], key_kind)]
    if wrong:
        raise ValueError(f'{path}: {wrong} must each hold a JSON {key_kind.__name__}')
    return data


def read_header(path: str) -> List[str]:
    """The stripped column names of a CSV file (empty list for an empty file)."""
    with open_text(path) as f:
        return [h.strip() for h in next(csv.reader(f), [])]


def read_list(path: str) -> List[str]:
    """Non-empty, stripped lines of a text list (e.g. NIH ``test_list.txt``)."""
    with open_text(path) as f:
        return [line.strip() for line in f if line.strip()]


def parse_number(value: str, what: str) -> float:
    """A finite float from a table cell.

    Raises:
        ValueError: ``"<what>: <value> is not a number"`` (also for blank, NaN or inf).
    """
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f'{what}: {value!r} is not a finite number')
    return number


def is_blank(value: Optional[str]) -> bool:
    """Whether a cell is empty or a NaN spelling (pandas writes NaN as '' or 'nan')."""
    return value is None or value.strip().lower() in ('', 'nan', 'none', 'null')


def find_file(root: str, names: Sequence[str], what: str) -> str:
    """The first of ``names`` found directly in ``root``, else anywhere below it.

    Raises:
        FileNotFoundError: None of ``names`` is under ``root``; the message says ``what``
            the file is.
    """
    for name in names:
        if osp.isfile(osp.join(root, name)):
            return osp.join(root, name)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in names:
            if name in filenames:
                return osp.join(dirpath, name)
    raise FileNotFoundError(f'{what}: none of {list(names)} found under {root}')
