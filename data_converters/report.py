"""The conversion report: what was converted, what was skipped and why, and what the
official files found could not give."""
from collections import Counter
from typing import Dict, List, Optional

from fxmm.utils.atomic_io import atomic_write_json


class ConversionReport:
    """Counts of converted images per split and every skipped item with its reason.

    A converter keeps going when one record is bad (missing image, unreadable DICOM,
    malformed CSV row, RLE overrunning the image, ...): the item is recorded here and
    left out. What the found layout cannot give (a missing label table, classes without any
    label) is recorded as a note. The report is saved as JSON next to the annotation files
    and summarised on the console.

    Args:
        dataset (str): The dataset name (``metainfo['dataset']``).
    """

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.skipped: Dict[str, str] = {}
        self.converted: Counter = Counter()
        self.counts: Counter = Counter()
        self.files: List[str] = []
        self.notes: List[str] = []

    def skip(self, item: str, reason: str) -> None:
        """Record that ``item`` (an image id, or ``file:line``) is left out, and why; a
        second reason for the same item is appended."""
        if item in self.skipped and reason not in self.skipped[item]:
            self.skipped[item] += f'; {reason}'
        else:
            self.skipped.setdefault(item, reason)

    def __contains__(self, item: str) -> bool:
        return item in self.skipped

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to a named counter (e.g. ``'lateral views excluded'``)."""
        self.counts[what] += n

    def note(self, text: str) -> None:
        """Record what the conversion cannot give (e.g. ``'the Kaggle copy has no image
        labels: ...'``); each note is kept once, in order."""
        if text not in self.notes:
            self.notes.append(text)

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict."""
        return dict(
            dataset=self.dataset,
            converted=dict(sorted(self.converted.items())),
            num_converted=sum(self.converted.values()),
            num_skipped=len(self.skipped),
            counts=dict(sorted(self.counts.items())),
            notes=list(self.notes),
            files=list(self.files),
            skipped=[dict(item=item, reason=reason)
                     for item, reason in sorted(self.skipped.items())])

    def summary(self, max_items: int = 10, path: Optional[str] = None) -> str:
        """A few lines for the console: counts per split, the counters, then up to
        ``max_items`` skipped items with reasons (the full list is in the JSON report at
        ``path``) and the files written. The notes are not in it (they are logged as
        warnings)."""
        splits = ', '.join(f'{split} {n}' for split, n in sorted(self.converted.items()))
        lines = [f'{self.dataset}: converted {sum(self.converted.values())} images '
                 f'({splits or "none"}), skipped {len(self.skipped)}']
        lines += [f'  {what}: {n}' for what, n in sorted(self.counts.items())]
        for item, reason in sorted(self.skipped.items())[:max_items]:
            lines.append(f'  skipped {item}: {reason}')
        if len(self.skipped) > max_items:
            lines.append(f'  ... and {len(self.skipped) - max_items} more'
                         + (f', see {path}' if path else ''))
        lines += [f'  wrote {f}' for f in self.files]
        return '\n'.join(lines)

    def dump(self, path: str) -> None:
        """Write the report as JSON (atomically)."""
        atomic_write_json(self.to_dict(), path, indent=1)
