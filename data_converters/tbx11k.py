"""TBX11K -> fxmm annotations (cls: healthy / sick non-TB / TB, loc: 3 TB box classes).

Official layout (the TBX11K release)::

    TBX11K/
      imgs/health/h0001.png, imgs/sick/s0001.png, imgs/tb/tb0003.png, imgs/test/...  (512^2)
      annotations/json/TBX11K_train.json, TBX11K_val.json
                 COCO: images (file_name 'tb/tb0003.png', relative to imgs/), annotations
                 (bbox x, y, w, h; category_id), categories ActiveTuberculosis,
                 ObsoletePulmonaryTuberculosis, PulmonaryTuberculosis
      lists/TBX11K_train.txt, TBX11K_val.txt, ...   (not read: the JSONs list the same images)

The image class is its folder under ``imgs/`` (health, sick, tb). The test labels are not
public: the official val set is our test split, and val is drawn from the official train set
(seeded; each image is its own patient). Usage::

    python data_converters/tbx11k.py --root data/cxr/TBX11K
"""
import os.path as osp
import sys
from typing import List

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.masks import check_box, xywh_to_xyxy  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.tables import find_file, read_json  # noqa: E402

TBX11K_CLASSES = ('Healthy', 'Sick but non-TB', 'TB')
TBX11K_FOLDERS = {'health': 0, 'sick': 1, 'tb': 2}
TBX11K_BOX_CLASSES = ('ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis',
                      'PulmonaryTuberculosis')


class TBX11KConverter(BaseConverter):
    """TBX11K: the COCO JSONs of the official train/val sets and the PNGs under ``imgs/``."""

    dataset = 'tbx11k'
    tasks = ('cls', 'loc')
    cls_classes = TBX11K_CLASSES
    det_classes = TBX11K_BOX_CLASSES
    source = ('TBX11K, Liu et al., "Rethinking computer-aided tuberculosis diagnosis", '
              'CVPR 2020')
    official = {'TBX11K_train.json': 'trainval', 'TBX11K_val.json': 'test'}

    def collect(self, report: ConversionReport) -> List[dict]:
        files = self.index_files(('.png', ), by_stem=False, report=report)
        records = []
        for json_name, split in self.official.items():
            path = find_file(self.root, (json_name, ), 'TBX11K COCO annotations')
            coco = read_json(path, dict, ('images', 'categories'), list)
            try:
                categories = {c['id']: c['name'] for c in coco['categories']}
            except (KeyError, TypeError):
                raise ValueError(f'{path}: every categories entry needs an id and a name')
            boxes = {}
            for i, ann in enumerate(coco.get('annotations', [])):
                if not isinstance(ann, dict) or 'image_id' not in ann:
                    report.skip(f'{json_name}:annotations[{i}]',
                                f'{json_name} annotations[{i}]: no image_id')
                    continue
                boxes.setdefault(ann['image_id'], []).append((i, ann))
            for image in coco['images']:
                file_name = str(image.get('file_name'))
                img_file = osp.join(self.root, 'imgs', file_name)
                if not osp.isfile(img_file):
                    img_file = files.get(osp.basename(file_name))
                if img_file is None:
                    report.skip(file_name, f'image file {file_name} not found under {self.root}')
                    continue
                # the class folder: from file_name ('tb/tb0003.png'), else where the file is
                parts = file_name.replace('\\', '/').split('/')
                folder = parts[0] if len(parts) > 1 else osp.basename(osp.dirname(img_file))
                try:
                    record = self._record(image, folder, boxes.get(image['id'], []),
                                          categories, json_name)
                except (KeyError, TypeError, ValueError) as err:
                    reason = f'missing key {err}' if isinstance(err, KeyError) else str(err)
                    report.skip(file_name, f'{json_name}: {reason}')
                    continue
                records.append(dict(record, img_file=img_file, split=split))
        return records

    @staticmethod
    def _record(image: dict, folder: str, anns: list, categories: dict, json_name: str) -> dict:
        file_name = image['file_name']
        if folder not in TBX11K_FOLDERS:
            raise ValueError(f'{file_name}: the image class comes from its folder, expected '
                             f'one of {sorted(TBX11K_FOLDERS)}')
        instances = []
        for i, ann in anns:
            name = categories.get(ann['category_id'])
            if name not in TBX11K_BOX_CLASSES:
                raise ValueError(f'annotations[{i}]: unknown category {ann["category_id"]!r}')
            instances.append(dict(bbox=list(xywh_to_xyxy(*map(float, ann['bbox']))),
                                  bbox_label=TBX11K_BOX_CLASSES.index(name),
                                  where=f'{json_name} annotations[{i}]'))
        label = TBX11K_FOLDERS[folder]
        return dict(key=file_name, patient_id=osp.splitext(osp.basename(file_name))[0],
                    cls_label=[int(i == label) for i in range(len(TBX11K_CLASSES))],
                    boxes=instances)

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        return dict(cls_label=record['cls_label'],
                    instances=[dict(bbox=check_box(b['bbox'], height, width, b['where']),
                                    bbox_label=b['bbox_label']) for b in record['boxes']])


if __name__ == '__main__':
    sys.exit(TBX11KConverter.main())
