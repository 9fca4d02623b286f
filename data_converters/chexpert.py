"""CheXpert -> fxmm annotations (cls: 14 observations, raw 1 / 0 / -1 / null labels).

Official layout (``CheXpert-v1.0`` or the downsampled ``CheXpert-v1.0-small``)::

    CheXpert-v1.0-small/
      train.csv, valid.csv    Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding, ...,
                              Support Devices (1.0 / 0.0 / -1.0 uncertain / blank)
      train/patient00001/study1/view1_frontal.jpg, valid/...

``Path`` starts with the release folder's name (``CheXpert-v1.0-small/train/...``); it is
resolved against ``--root`` whatever the folder is called. Frontal views only. The labels are
kept raw: the uncertain/blank policy (U-ones, U-zeros, LSR) is chosen when the dataset is
loaded (``CXRDataset(label_policy=...)``). Splits: the official ``valid.csv`` (234 images) is
the test split, as in Ark and Foundation X; val is drawn from ``train.csv`` by patient,
seeded. Usage::

    python data_converters/chexpert.py --root data/cxr/CheXpert-v1.0-small
"""
import os.path as osp
import sys
from typing import List, Optional

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.tables import find_file, read_table  # noqa: E402

CHEXPERT_CLASSES = ('No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity',
                    'Lung Lesion', 'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis',
                    'Pneumothorax', 'Pleural Effusion', 'Pleural Other', 'Fracture',
                    'Support Devices')
# the labeller's values as written in the CSVs; blank = not mentioned
_LABEL_VALUES = {'1.0': 1, '1': 1, '0.0': 0, '0': 0, '-1.0': -1, '-1': -1, '': None}


def parse_chexpert_labels(row: dict, where: str) -> List[Optional[int]]:
    """The 14 CheXpert-labeller values of a table row, in :data:`CHEXPERT_CLASSES` order.

    Raises:
        ValueError: A value other than 1.0 / 0.0 / -1.0 / blank.
    """
    labels = []
    for cls in CHEXPERT_CLASSES:
        value = row[cls]
        if value not in _LABEL_VALUES:
            raise ValueError(f'{where}: {cls} must be 1.0, 0.0, -1.0 or blank, got {value!r}')
        labels.append(_LABEL_VALUES[value])
    return labels


class CheXpertConverter(BaseConverter):
    """CheXpert: ``train.csv`` / ``valid.csv`` with JPEGs, frontal views."""

    dataset = 'chexpert'
    tasks = ('cls', )
    cls_classes = CHEXPERT_CLASSES
    source = ('CheXpert, Irvin et al., "CheXpert: A large chest radiograph dataset with '
              'uncertainty labels and expert comparison", AAAI 2019')
    tables = {'train.csv': 'trainval', 'valid.csv': 'test'}

    def collect(self, report: ConversionReport) -> List[dict]:
        records = []
        for table_name, split in self.tables.items():
            table = find_file(self.root, (table_name, ), 'CheXpert table')
            columns = ('Path', 'Frontal/Lateral') + CHEXPERT_CLASSES
            for line, row in read_table(table, columns, report, key_column='Path'):
                path, where = row['Path'], f'{table_name} line {line}'
                if row['Frontal/Lateral'] != 'Frontal':
                    report.count('lateral views left out')
                    continue
                try:
                    labels = parse_chexpert_labels(row, where)
                except ValueError as err:
                    report.skip(path, str(err))
                    continue
                img_file = self._resolve(path, osp.dirname(table))
                if img_file is None:
                    report.skip(path, f'image file not found under {self.root}')
                    continue
                patient = next((p for p in path.split('/') if p.startswith('patient')), path)
                records.append(dict(key=path, img_file=img_file, split=split,
                                    patient_id=patient, cls_label=labels))
        return records

    def _resolve(self, path: str, table_dir: str) -> Optional[str]:
        """The file of a ``Path`` value: below the root or the table's folder without the
        release folder name it starts with, else below the root or its parent as written."""
        parts = path.split('/')
        tail = osp.join(*parts[1:]) if len(parts) > 1 else path
        for candidate in (osp.join(self.root, tail), osp.join(table_dir, tail),
                          osp.join(self.root, path), osp.join(osp.dirname(self.root), path)):
            if osp.isfile(candidate):
                return candidate
        return None

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        return dict(cls_label=record['cls_label'])


if __name__ == '__main__':
    sys.exit(CheXpertConverter.main())
