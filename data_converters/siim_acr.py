"""SIIM-ACR Pneumothorax Segmentation -> fxmm annotations (cls, loc, seg).

Official layout (the SIIM/Kaggle download)::

    siim-acr-pneumothorax/
      train-rle.csv                      ImageId, EncodedPixels (header and values
                                         carry a leading space: ' EncodedPixels', ' -1')
      dicom-images-train/<study>/<series>/<ImageId>.dcm
      dicom-images-test/...              (unlabelled, ignored)

``EncodedPixels`` is SIIM's RLE (relative offsets, column-major, ``-1`` = no pneumothorax);
an image with several components has several rows, merged here. The boxes are the
8-connected components of the merged mask; the image label is 1 when the mask is not empty.
The competition's test labels are not public, so the split is patient-level and seeded
(DICOM Patient ID). Usage::

    python data_converters/siim_acr.py --root data/cxr/siim-acr-pneumothorax
"""
import os.path as osp
import sys
from collections import OrderedDict
from typing import List, Tuple

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter, dicom_patient_id  # noqa: E402
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
        for line, row in read_table(table, (self.id_column, self.rle_column), report,
                                    key_column=self.id_column):
            image_id = row[self.id_column]
            if not image_id:
                report.skip(f'{name}:{line}', f'{name} line {line}: empty {self.id_column}')
                continue
            rles.setdefault(image_id, []).append((f'{name} line {line} ({image_id})',
                                                  row[self.rle_column]))
        files = self.index_files(self.image_suffixes, report=report)
        records = []
        for image_id, rows in rles.items():
            if image_id not in files:
                report.skip(image_id, f'image file {image_id}{self.image_suffixes[0]} not '
                            f'found under {self.root}')
                continue
            records.append(dict(key=image_id, img_file=files[image_id], split=None,
                                patient_id=None, rles=rows))
        return records

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        mask = decode_siim_rles(record['rles'], height, width)
        return dict(patient_id=dicom_patient_id(record['img_file']) or record['key'],
                    cls_label=[int(mask.any())],
                    instances=component_instances(mask, label=0),
                    seg=encode_masks({'Pneumothorax': mask}))


if __name__ == '__main__':
    sys.exit(SIIMACRConverter.main())
