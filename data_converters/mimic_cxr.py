"""MIMIC-CXR-JPG -> fxmm annotations (cls: the 14 CheXpert-labeller findings, raw values).

Official layout (PhysioNet ``mimic-cxr-jpg/2.0.0``; the tables may be ``.csv`` or
``.csv.gz``)::

    mimic-cxr-jpg/
      mimic-cxr-2.0.0-chexpert.csv    subject_id, study_id, 14 findings (1.0 / 0.0 / -1.0 / blank)
      mimic-cxr-2.0.0-metadata.csv    dicom_id, subject_id, study_id, ..., ViewPosition, ...
      mimic-cxr-2.0.0-split.csv       dicom_id, study_id, subject_id, split
                                      (train / validate / test)
      files/p10/p10000032/s50414267/<dicom_id>.jpg

Labels belong to studies: each PA or AP image gets its study's labels (other views are left
out; a study without a labeller row has null labels, the images of a study whose row is
malformed are skipped). The classes are in CheXpert's order. The labels are kept raw; the
uncertain policy (U-ones for MIMIC in Ark) is applied when the dataset is loaded. Splits:
the official ones, patient = ``subject_id``. Usage::

    python data_converters/mimic_cxr.py --root data/cxr/mimic-cxr-jpg
"""
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.chexpert import CHEXPERT_CLASSES, parse_chexpert_labels  # noqa: E402
from data_converters.common import BaseConverter  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.tables import find_file, read_table  # noqa: E402

MIMIC_VIEWS = ('PA', 'AP')
_SPLITS = {'train': 'train', 'validate': 'val', 'test': 'test'}


def _table(root: str, name: str) -> str:
    return find_file(root, (f'{name}.csv', f'{name}.csv.gz'), f'MIMIC-CXR-JPG table {name}')


class MIMICCXRConverter(BaseConverter):
    """MIMIC-CXR-JPG: labeller, metadata and split tables joined on the study."""

    dataset = 'mimic_cxr'
    tasks = ('cls', )
    cls_classes = CHEXPERT_CLASSES
    source = ('MIMIC-CXR-JPG, Johnson et al., https://physionet.org/content/mimic-cxr-jpg/2.0.0/')

    def collect(self, report: ConversionReport) -> List[dict]:
        labels = self._read_labels(_table(self.root, 'mimic-cxr-2.0.0-chexpert'), report)
        splits = self._read_splits(_table(self.root, 'mimic-cxr-2.0.0-split'), report)
        meta = _table(self.root, 'mimic-cxr-2.0.0-metadata')
        name = osp.basename(meta)
        records = []
        columns = ('dicom_id', 'subject_id', 'study_id', 'ViewPosition')
        for line, row in read_table(meta, columns, report, key_column='dicom_id'):
            dicom_id, subject, study = row['dicom_id'], row['subject_id'], row['study_id']
            if row['ViewPosition'] not in MIMIC_VIEWS:
                report.count('views other than PA/AP left out')
                continue
            if dicom_id not in splits:
                report.skip(dicom_id, f'{name} line {line}: not in the split table')
                continue
            img_file = osp.join(self.root, 'files', f'p{subject[:2]}', f'p{subject}',
                                f's{study}', f'{dicom_id}.jpg')
            if not osp.isfile(img_file):
                report.skip(dicom_id, f'image file {img_file} not found')
                continue
            study_labels = labels.get((subject, study))
            if study_labels is None and study in report:  # a labeller row read_table refused
                study_labels = (f'the labeller row of study {study} is malformed: '
                                f'{report.skipped[study]}')
            if isinstance(study_labels, str):  # the study's labeller row is malformed
                report.skip(dicom_id, study_labels)
                continue
            if study_labels is None:
                report.count('images of studies without labeller row (null labels)')
                study_labels = [None] * len(CHEXPERT_CLASSES)
            records.append(dict(key=dicom_id, img_file=img_file, split=splits[dicom_id],
                                patient_id=subject, cls_label=study_labels))
        return records

    @staticmethod
    def _read_labels(path: str, report: ConversionReport
                     ) -> Dict[Tuple[str, str], Union[str, List[Optional[int]]]]:
        """(subject_id, study_id) -> labels, or the error of a malformed row (its study's
        images are then skipped; a row with a wrong number of fields is reported under its
        study_id)."""
        name = osp.basename(path)
        labels = {}
        for line, row in read_table(path, ('subject_id', 'study_id') + CHEXPERT_CLASSES,
                                    report, key_column='study_id'):
            try:
                labels[row['subject_id'], row['study_id']] = parse_chexpert_labels(
                    row, f'{name} line {line}')
            except ValueError as err:
                labels[row['subject_id'], row['study_id']] = str(err)
        return labels

    @staticmethod
    def _read_splits(path: str, report: ConversionReport) -> Dict[str, str]:
        name = osp.basename(path)
        splits = {}
        for line, row in read_table(path, ('dicom_id', 'split'), report, key_column='dicom_id'):
            if row['split'] not in _SPLITS:
                report.skip(row['dicom_id'], f'{name} line {line}: unknown split '
                            f'{row["split"]!r}')
            else:
                splits[row['dicom_id']] = _SPLITS[row['split']]
        return splits

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        return dict(cls_label=record['cls_label'])


if __name__ == '__main__':
    sys.exit(MIMICCXRConverter.main())
