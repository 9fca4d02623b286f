"""SIIM-ACR Pneumothorax Segmentation -> fxmm annotations (cls, loc, seg).

Official layout (the SIIM/Kaggle download)::

    siim-acr-pneumothorax/
      train-rle.csv                      ImageId, EncodedPixels (header and values
                                         carry a leading space: ' EncodedPixels', ' -1')
      dicom-images-train/<study>/<series>/<ImageId>.dcm
      dicom-images-test/...              (unlabelled, ignored)

``EncodedPixels`` is SIIM's RLE (relative offsets, column-major, ``-1`` = no pneumothorax);
an image with several components has several rows, merged here. The image id of a row is
matched to a file by three rules, in this order (the report counts the images each matched):
the file's exact name (an id written ``<id>.dcm``), the file's stem (``<id>`` ->
``<id>.dcm``), then the SOPInstanceUID in the headers of the DICOMs not matched so far. The
boxes are the 8-connected components of the merged mask; the image label is 1 when the mask
is not empty.
The competition's test labels are not public, so the split is patient-level and seeded
(DICOM Patient ID). Usage::

    python data_converters/siim_acr.py --root data/cxr/siim-acr-pneumothorax
"""
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, Iterable, List, Tuple

import numpy as np
import pydicom

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import RECORD_ERRORS, BaseConverter, dicom_tag  # noqa: E402
from data_converters.masks import component_instances, encode_masks  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.run_length import decode_siim_rles  # noqa: E402
from data_converters.tables import find_file, read_table  # noqa: E402


class SIIMACRConverter(BaseConverter):
    """SIIM-ACR Pneumothorax: ``train-rle.csv`` + nested DICOMs -> cls/loc/seg annotations.

    Subclasses (CANDID-PTX) change the table, its columns and how image files are found.
    """

    dataset = 'siim'
    tasks = ('cls', 'loc', 'seg')
    cls_classes = ('Pneumothorax', )
    det_classes = ('Pneumothorax', )
    seg_classes = ('Pneumothorax', )
    source = ('SIIM-ACR Pneumothorax Segmentation (2019), '
              'https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation')
    table_names = ('train-rle.csv', )
    id_column = 'ImageId'
    rle_column = 'EncodedPixels'
    image_suffixes = ('.dcm', )

    def collect(self, report: ConversionReport) -> List[dict]:
        table = find_file(self.root, self.table_names, f'{self.dataset} RLE table')
        name = osp.basename(table)
        # image id -> [(where, RLE text)], one per row: an error names its own row
        rles: 'OrderedDict[str, List[Tuple[str, str]]]' = OrderedDict()
        names: Dict[str, str] = {}  # image id -> the first spelling of it in the table
        for line, row in read_table(table, (self.id_column, self.rle_column), report,
                                    key_column=self.id_column):
            name_in_table = row[self.id_column]
            image_id = self._image_id(name_in_table)
            if not image_id:
                report.skip(f'{name}:{line}', f'{name} line {line}: empty {self.id_column}')
                continue
            names.setdefault(image_id, name_in_table)
            rles.setdefault(image_id, []).append((f'{name} line {line} ({image_id})',
                                                  row[self.rle_column]))
        files = self._match_files(names, report)
        records = []
        for image_id, rows in rles.items():
            if image_id not in files:
                report.skip(image_id, f'image file not found under {self.root}: no file '
                            f'named {names[image_id]!r} or {image_id}{self.image_suffixes[0]}, '
                            f'nor a DICOM with SOPInstanceUID {image_id}')
                continue
            records.append(dict(key=image_id, img_file=files[image_id], split=None,
                                patient_id=None, rles=rows))
        return records

    def _image_id(self, name_in_table: str) -> str:
        """A table's image id without the file suffix it may carry (``<uid>.dcm`` -> uid)."""
        if name_in_table.lower().endswith(self.image_suffixes):
            return osp.splitext(name_in_table)[0]
        return name_in_table

    def _match_files(self, names: Dict[str, str],
                     report: ConversionReport) -> Dict[str, str]:
        """image id -> its file, by exact file name, file stem, then DICOM SOPInstanceUID
        (see the module docstring); the report counts the images each rule matched."""
        by_name = self.index_files(self.image_suffixes, by_stem=False, report=report)
        by_stem: Dict[str, str] = {}
        for file_name, path in by_name.items():
            by_stem.setdefault(osp.splitext(file_name)[0], path)
        files: Dict[str, str] = {}
        for image_id, name_in_table in names.items():
            if name_in_table in by_name:
                files[image_id] = by_name[name_in_table]
                report.count('images matched by exact file name')
            elif image_id in by_stem:
                files[image_id] = by_stem[image_id]
                report.count('images matched by file stem')
        unmatched = set(names) - set(files)
        if unmatched:
            claimed = set(files.values())
            for uid, path in self._sop_instance_uids(p for p in by_name.values()
                                                     if p not in claimed):
                if uid in unmatched and uid not in files:
                    files[uid] = path
                    report.count('images matched by DICOM SOPInstanceUID')
        return files

    @staticmethod
    def _sop_instance_uids(paths: Iterable[str]) -> Iterable[Tuple[str, str]]:
        """``(SOPInstanceUID, path)`` of the readable DICOM headers among ``paths``."""
        for path in paths:
            try:
                uid = dicom_tag(path, 'SOPInstanceUID')
            except (*RECORD_ERRORS, pydicom.errors.InvalidDicomError):
                continue  # unreadable: not the file of any id
            if uid:
                yield uid, path

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        mask = decode_siim_rles(record['rles'], height, width)
        return dict(patient_id=dicom_tag(record['img_file'], 'PatientID') or record['key'],
                    cls_label=[int(mask.any())],
                    instances=component_instances(mask, label=0),
                    seg=encode_masks({'Pneumothorax': mask}))


if __name__ == '__main__':
    sys.exit(SIIMACRConverter.main())
