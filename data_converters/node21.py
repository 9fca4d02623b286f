"""NODE21 -> fxmm annotations (cls: nodule, loc: nodule boxes).

Official layout (the NODE21 challenge data, zenodo)::

    node21/
      cxr_images/proccessed_data/metadata.csv   img_name, x, y, width, height, label
                                                 (one row per nodule; label 0 rows: no box)
      cxr_images/proccessed_data/images/n0001.mha ...   (MetaImage, read with SimpleITK)

The metadata table and images are found anywhere under ``--root``. No official split:
patient-level, seeded (each image is its own patient). Usage::

    python data_converters/node21.py --root data/cxr/node21
"""
import os.path as osp
import sys
from typing import Dict, List

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.masks import check_box, xywh_to_xyxy  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.tables import find_file, parse_number, read_table  # noqa: E402


class NODE21Converter(BaseConverter):
    """NODE21: ``metadata.csv`` (one row per nodule) and ``.mha`` images."""

    dataset = 'node21'
    tasks = ('cls', 'loc')
    cls_classes = ('Nodule', )
    det_classes = ('Nodule', )
    source = ('NODE21 challenge, Sogancioglu et al., "Nodule detection and generation on chest '
              'X-rays: NODE21 challenge", IEEE TMI 2024, https://node21.grand-challenge.org')

    def collect(self, report: ConversionReport) -> List[dict]:
        table = find_file(self.root, ('metadata.csv', ), 'NODE21 metadata table')
        name = osp.basename(table)
        rows: Dict[str, List[list]] = {}
        columns = ('img_name', 'x', 'y', 'width', 'height', 'label')
        for line, row in read_table(table, columns, report, key_column='img_name'):
            image, where = row['img_name'], f'{name} line {line}'
            boxes = rows.setdefault(image, [])
            try:
                label = int(parse_number(row['label'], f'{where} label'))
                if label not in (0, 1):
                    raise ValueError(f'{where}: label must be 0 or 1, got {row["label"]!r}')
                if label:
                    boxes.append(list(xywh_to_xyxy(*(
                        parse_number(row[c], f'{where} {c}')
                        for c in ('x', 'y', 'width', 'height')))) + [where])
            except ValueError as err:
                report.skip(image, str(err))
        files = self.index_files(('.mha', ), by_stem=False, report=report)
        records = []
        for image, boxes in rows.items():
            if image not in files:
                report.skip(image, f'image file {image} not found under {self.root}')
                continue
            records.append(dict(key=image, img_file=files[image], split=None,
                                patient_id=osp.splitext(image)[0], boxes=boxes))
        return records

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        return dict(cls_label=[int(bool(record['boxes']))],
                    instances=[dict(bbox=check_box(box[:4], height, width, box[4]),
                                    bbox_label=0) for box in record['boxes']])


if __name__ == '__main__':
    sys.exit(NODE21Converter.main())
