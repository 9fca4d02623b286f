"""RSNA Pneumonia Detection Challenge -> fxmm annotations (cls: 3 classes, loc: opacity).

Official layout (the Kaggle competition download)::

    rsna-pneumonia-detection-challenge/
      stage_2_train_labels.csv          patientId, x, y, width, height, Target
                                        (one row per box; Target 0 rows have no box)
      stage_2_detailed_class_info.csv   patientId, class ('Normal',
                                        'No Lung Opacity / Not Normal', 'Lung Opacity')
      stage_2_train_images/<patientId>.dcm

The image label is one-hot over the 3 classes; the boxes are the Target-1 rows. An image
whose rows disagree (a box on a 'Normal' image, two classes) is skipped. The stage-2 test
labels are not public, so the split is patient-level and seeded. Usage::

    python data_converters/rsna_pneumonia.py --root data/cxr/rsna-pneumonia-detection-challenge
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

RSNA_CLASSES = ('Normal', 'No Lung Opacity / Not Normal', 'Lung Opacity')


class RSNAPneumoniaConverter(BaseConverter):
    """RSNA Pneumonia: box table + detailed class table + DICOMs."""

    dataset = 'rsna_pneumonia'
    tasks = ('cls', 'loc')
    cls_classes = RSNA_CLASSES
    det_classes = ('Lung Opacity', )
    source = ('RSNA Pneumonia Detection Challenge (2018), '
              'https://www.kaggle.com/c/rsna-pneumonia-detection-challenge')

    def collect(self, report: ConversionReport) -> List[dict]:
        labels_csv = find_file(self.root, ('stage_2_train_labels.csv', ), 'RSNA box table')
        classes_csv = find_file(self.root, ('stage_2_detailed_class_info.csv', ),
                                'RSNA class table')
        classes = self._read_classes(classes_csv, report)
        boxes: Dict[str, List[list]] = {}
        name = osp.basename(labels_csv)
        columns = ('patientId', 'x', 'y', 'width', 'height', 'Target')
        for line, row in read_table(labels_csv, columns, report, key_column='patientId'):
            pid, where = row['patientId'], f'{name} line {line}'
            items = boxes.setdefault(pid, [])
            try:
                target = int(parse_number(row['Target'], f'{where} Target'))
                if target not in (0, 1):
                    raise ValueError(f'{where}: Target must be 0 or 1, got {row["Target"]!r}')
                if target:
                    items.append(list(xywh_to_xyxy(*(
                        parse_number(row[c], f'{where} {c}')
                        for c in ('x', 'y', 'width', 'height')))) + [where])
            except ValueError as err:
                report.skip(pid, str(err))
        files = self.index_files(('.dcm', ), report=report)
        records = []
        for pid in sorted(set(boxes) | set(classes)):
            if pid in report:
                continue
            if pid not in classes or pid not in boxes:
                missing = 'stage_2_detailed_class_info.csv' if pid in boxes else name
                report.skip(pid, f'no row in {missing}')
            elif (classes[pid] == 'Lung Opacity') != bool(boxes[pid]):
                report.skip(pid, f'class {classes[pid]!r} but {len(boxes[pid])} boxes')
            elif pid not in files:
                report.skip(pid, f'image file {pid}.dcm not found under {self.root}')
            else:
                records.append(dict(key=pid, img_file=files[pid], split=None, patient_id=pid,
                                    cls=classes[pid], boxes=boxes[pid]))
        return records

    @staticmethod
    def _read_classes(path: str, report: ConversionReport) -> Dict[str, str]:
        """patientId -> class; an unknown class or two classes for one image is an error."""
        name = osp.basename(path)
        classes: Dict[str, str] = {}
        for line, row in read_table(path, ('patientId', 'class'), report,
                                    key_column='patientId'):
            pid, cls = row['patientId'], row['class']
            if cls not in RSNA_CLASSES:
                report.skip(pid, f'{name} line {line}: unknown class {cls!r}')
            elif classes.setdefault(pid, cls) != cls:
                report.skip(pid, f'{name} line {line}: class {cls!r} after {classes[pid]!r}')
        return classes

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        return dict(
            cls_label=[int(record['cls'] == c) for c in RSNA_CLASSES],
            instances=[dict(bbox=check_box(box[:4], height, width, box[4]), bbox_label=0)
                       for box in record['boxes']])


if __name__ == '__main__':
    sys.exit(RSNAPneumoniaConverter.main())
