"""NIH ChestX-ray14 -> fxmm annotations (cls: 14 findings, loc: 8 findings with boxes).

Official layout (the NIH box folder ``CXR8``)::

    CXR8/
      Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv)
                           Image Index, Finding Labels ('A|B' or 'No Finding'), Follow-up #,
                           Patient ID, Patient Age, Patient Gender, View Position, ...
      BBox_List_2017.csv   Image Index, Finding Label, Bbox [x, y, w, h] (header split over
                           four columns 'Bbox [x', 'y', 'w', 'h]'), trailing empty columns
      train_val_list.txt, test_list.txt
      images/*.png         (or images_001/images/*.png ...: found by name anywhere)

The box table spells "Infiltrate" where the label table says "Infiltration". Only ~1000
test images have boxes: for detection, filter to images with boxes
(``filter_cfg=dict(filter_empty_gt=True)``). Splits: ``test_list.txt``; val drawn from
``train_val_list.txt`` by patient, seeded. Usage::

    python data_converters/chestxray14.py --root data/cxr/CXR8
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
from data_converters.tables import (find_file, parse_number, read_header,  # noqa: E402
                                    read_list, read_table)

NIH_CLASSES = ('Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule',
               'Pneumonia', 'Pneumothorax', 'Consolidation', 'Edema', 'Emphysema', 'Fibrosis',
               'Pleural_Thickening', 'Hernia')
NIH_BOX_CLASSES = ('Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule',
                   'Pneumonia', 'Pneumothorax')
# box-table spelling -> label-table spelling
_BOX_ALIASES = {'Infiltrate': 'Infiltration'}


class ChestXray14Converter(BaseConverter):
    """NIH ChestX-ray14: label table, box table, official split lists, PNGs."""

    dataset = 'chestxray14'
    tasks = ('cls', 'loc')
    cls_classes = NIH_CLASSES
    det_classes = NIH_BOX_CLASSES
    source = ('ChestX-ray14, Wang et al., "ChestX-ray8: Hospital-scale chest X-ray database '
              'and benchmarks", CVPR 2017, https://nihcc.app.box.com/v/ChestXray-NIHCC')

    def collect(self, report: ConversionReport) -> List[dict]:
        entry_csv = find_file(self.root, ('Data_Entry_2017.csv', 'Data_Entry_2017_v2020.csv'),
                              'NIH label table')
        boxes = self._read_boxes(report)
        split_of = self._read_splits()
        files = self.index_files(('.png', ), by_stem=False, report=report)
        name = osp.basename(entry_csv)
        records = []
        columns = ('Image Index', 'Finding Labels', 'Patient ID')
        for line, row in read_table(entry_csv, columns, report, key_column='Image Index'):
            image = row['Image Index']
            findings = set(row['Finding Labels'].split('|')) - {'No Finding'}
            unknown = sorted(findings - set(NIH_CLASSES))
            if unknown or not row['Finding Labels']:
                report.skip(image, f'{name} line {line}: unknown finding label(s) '
                            f'{unknown or [""]}')
                continue
            if split_of and image not in split_of:
                report.skip(image, 'in neither train_val_list.txt nor test_list.txt')
                continue
            if image not in files:
                report.skip(image, f'image file {image} not found under {self.root}')
                continue
            records.append(dict(key=image, img_file=files[image], split=split_of.get(image),
                                patient_id=row['Patient ID'],
                                cls_label=[int(c in findings) for c in NIH_CLASSES],
                                boxes=boxes.get(image, [])))
        return records

    def _read_splits(self) -> Dict[str, str]:
        """image -> 'trainval' / 'test' from the official lists ({} if they are absent)."""
        split_of = {}
        for names, split in ((('train_val_list.txt', 'train_val_list_NIH.txt'), 'trainval'),
                             (('test_list.txt', 'test_list_NIH.txt'), 'test')):
            try:
                path = find_file(self.root, names, 'NIH split list')
            except FileNotFoundError:
                return {}
            split_of.update(dict.fromkeys(read_list(path), split))
        return split_of

    def _read_boxes(self, report: ConversionReport) -> Dict[str, List[list]]:
        """image -> [[x1, y1, x2, y2, label, where]] from ``BBox_List_2017.csv``."""
        try:
            path = find_file(self.root, ('BBox_List_2017.csv', ), 'NIH box table')
        except FileNotFoundError:
            return {}
        name = osp.basename(path)
        # the four coordinates are the four columns after 'Finding Label', whatever their
        # names ('Bbox [x', 'y', 'w', 'h]' in the release)
        header = read_header(path)
        first = header.index('Finding Label') + 1 if 'Finding Label' in header else None
        if first is None or first + 4 > len(header):
            raise ValueError(f'{path}: expected Image Index, Finding Label and four box '
                             f'columns, got header {header}')
        coords = header[first:first + 4]
        boxes: Dict[str, List[list]] = {}
        for line, row in read_table(path, ('Image Index', 'Finding Label'), report,
                                    key_column='Image Index'):
            image, where = row['Image Index'], f'{name} line {line}'
            label = _BOX_ALIASES.get(row['Finding Label'], row['Finding Label'])
            try:
                if label not in NIH_BOX_CLASSES:
                    raise ValueError(f'{where}: unknown Finding Label {row["Finding Label"]!r}')
                box = xywh_to_xyxy(*(parse_number(row[c], f'{where} {c!r}') for c in coords))
            except ValueError as err:
                report.skip(image, str(err))
                continue
            boxes.setdefault(image, []).append(
                list(box) + [NIH_BOX_CLASSES.index(label), where])
        return boxes

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        return dict(cls_label=record['cls_label'],
                    instances=[dict(bbox=check_box(box[:4], height, width, box[5]),
                                    bbox_label=box[4]) for box in record['boxes']])


if __name__ == '__main__':
    sys.exit(ChestXray14Converter.main())
