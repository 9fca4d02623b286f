"""The cache of finished images that makes a conversion resumable."""
import hashlib
import json
import os
import os.path as osp
from typing import Dict, Optional

from fxmm.utils.atomic_io import atomic_write_json


class ResultCache:
    """Finished images of a conversion, so that an interrupted run does not redo them.

    A folder holding ``options.json`` (what the results depend on) and ``results.jsonl``
    (one JSON line per finished image, appended and flushed as it finishes). A line torn by
    a kill is ignored. Results are keyed by image key *and* a fingerprint of its record, so
    an image whose annotation changed is converted again.

    Args:
        folder (str): The cache folder; created if missing.
        options (dict): The run's options; must equal those of the cached run.

    Raises:
        FileExistsError: The folder holds a run with other options.
    """

    def __init__(self, folder: str, options: dict) -> None:
        self.folder = folder
        self.path = osp.join(folder, 'results.jsonl')
        self.results: Dict[str, dict] = {}
        options = json.loads(json.dumps(options))
        options_path = osp.join(folder, 'options.json')
        if osp.isdir(folder):
            saved = _load_json(options_path)
            if saved != options:
                raise FileExistsError(
                    f'{folder} holds an interrupted conversion with other options ({saved}, now '
                    f'{options}); pass --overwrite to start again')
            self._load()
        else:
            os.makedirs(folder)
            atomic_write_json(options, options_path)
        self._file = open(self.path, 'a', encoding='utf-8')
        if self._file.tell() and not _ends_with_newline(self.path):
            self._file.write('\n')  # after a torn last line

    def _load(self) -> None:
        if not osp.isfile(self.path):
            return
        with open(self.path, encoding='utf-8') as f:
            for line in f:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn by a kill
                if isinstance(item, dict) and {'key', 'fingerprint', 'entry'} <= set(item):
                    self.results[item['key']] = item

    def get(self, key: str, fingerprint: str) -> Optional[dict]:
        """The cached entry of ``key`` if it was made from the same record, else None."""
        item = self.results.get(key)
        return item['entry'] if item and item['fingerprint'] == fingerprint else None

    def add(self, key: str, fingerprint: str, entry: dict) -> None:
        """Append a finished entry (flushed at once)."""
        self._file.write(json.dumps(dict(key=key, fingerprint=fingerprint, entry=entry)) + '\n')
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> 'ResultCache':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _load_json(path: str):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _ends_with_newline(path: str) -> bool:
    with open(path, 'rb') as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b'\n'


def record_fingerprint(record: dict) -> str:
    """SHA-1 of a record's canonical JSON."""
    return hashlib.sha1(json.dumps(record, sort_keys=True).encode('utf-8')).hexdigest()
