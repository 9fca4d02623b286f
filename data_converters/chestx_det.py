"""ChestX-Det -> fxmm annotations (cls, loc, seg).

Official layout (Deepwise-AILab/ChestX-Det-Dataset)::

    ChestX-Det/
      ChestX_Det_train.json     [{"file_name": "36199.png", "syms": ["Effusion", ...],
      ChestX_Det_test.json        "boxes": [[x1, y1, x2, y2], ...],
                                  "polygons": [[[x, y], ...], ...]}, ...]
      train/*.png, test/*.png   the images (1024 x 1024), found by file name anywhere

The i-th sym, box and polygon describe one finding. Image labels are the classes present
(an image without syms is negative for all 13); the masks are the union of the polygons of
each class (vertices at pixel centres, see :mod:`.masks`). Splits: the official train
(val drawn from it, seeded) and test. ChestX-Det has no patient ids: each image is its own
patient. Usage::

    python data_converters/chestx_det.py --root data/cxr/ChestX-Det
"""
import os.path as osp
import sys
from typing import List

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.masks import check_box, encode_masks, rasterise_polygons  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.tables import find_file, read_json  # noqa: E402

CHESTX_DET_CLASSES = ('Atelectasis', 'Calcification', 'Cardiomegaly', 'Consolidation',
                      'Diffuse Nodule', 'Effusion', 'Emphysema', 'Fibrosis', 'Fracture', 'Mass',
                      'Nodule', 'Pleural Thickening', 'Pneumothorax')


class ChestXDetConverter(BaseConverter):
    """ChestX-Det: the train/test JSON lists of syms, boxes and polygons."""

    dataset = 'chestx_det'
    tasks = ('cls', 'loc', 'seg')
    cls_classes = CHESTX_DET_CLASSES
    det_classes = CHESTX_DET_CLASSES
    seg_classes = CHESTX_DET_CLASSES
    source = ('ChestX-Det, Lian et al., "A structure-aware relation network for thoracic '
              'diseases detection and segmentation", IEEE TMI 2021')
    official = {'ChestX_Det_train.json': 'trainval', 'ChestX_Det_test.json': 'test'}

    def collect(self, report: ConversionReport) -> List[dict]:
        files = self.index_files(('.png', ), by_stem=False, report=report)
        records = []
        for json_name, split in self.official.items():
            path = find_file(self.root, (json_name, ), 'ChestX-Det annotation list')
            items = read_json(path, list)
            for index, item in enumerate(items):
                where = f'{json_name}[{index}]'
                try:
                    record = self._record(item, where)
                except (TypeError, ValueError) as err:
                    key = item.get('file_name') if isinstance(item, dict) else None
                    report.skip(str(key or where), f'{where}: {err}')
                    continue
                if record['key'] in files:
                    records.append(dict(record, img_file=files[record['key']], split=split))
                else:
                    report.skip(record['key'], f'image file {record["key"]} not found '
                                f'under {self.root}')
        return records

    @staticmethod
    def _record(item: dict, where: str) -> dict:
        """Check one JSON item; the record without image file and split."""
        if not isinstance(item, dict):
            raise TypeError(f'expected an object, got {type(item).__name__}')
        missing = [k for k in ('file_name', 'syms', 'boxes', 'polygons') if k not in item]
        if missing:
            raise ValueError(f'missing key(s) {missing}')
        name = item['file_name']
        syms, boxes, polygons = item['syms'], item['boxes'], item['polygons']
        if not isinstance(name, str) or not name:
            raise ValueError(f'file_name must be a non-empty string, got {name!r}')
        if not (len(syms) == len(boxes) == len(polygons)):
            raise ValueError(f'syms, boxes and polygons must be parallel lists, got '
                             f'{len(syms)}, {len(boxes)} and {len(polygons)} items')
        unknown = sorted(set(syms) - set(CHESTX_DET_CLASSES))
        if unknown:
            raise ValueError(f'unknown class(es) {unknown}; expected {list(CHESTX_DET_CLASSES)}')
        return dict(key=osp.basename(name), patient_id=osp.splitext(osp.basename(name))[0],
                    syms=list(syms), boxes=boxes, polygons=polygons, where=where)

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        where = record['where']
        labels = [CHESTX_DET_CLASSES.index(sym) for sym in record['syms']]
        instances = [dict(bbox=check_box(box, height, width, f'{where} box {i}'),
                          bbox_label=label)
                     for i, (box, label) in enumerate(zip(record['boxes'], labels))]
        masks = {}
        for i, (sym, polygon) in enumerate(zip(record['syms'], record['polygons'])):
            mask = rasterise_polygons([polygon], height, width, f'{where} polygons[{i}]')
            masks[sym] = masks[sym] | mask if sym in masks else mask
        present = set(labels)
        return dict(cls_label=[int(i in present) for i in range(len(CHESTX_DET_CLASSES))],
                    instances=instances, seg=encode_masks(masks))


if __name__ == '__main__':
    sys.exit(ChestXDetConverter.main())
