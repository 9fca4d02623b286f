"""VinDr-RibCXR -> fxmm annotations (seg: 20 ribs, R1-R10 and L1-L10).

Official layout (the README of vinbigdata-medical/vindr-ribcxr)::

    VinDr-RibCXR/
      data/train/img/VinDr_RibCXR_train_000.png ...
      data/train/Vindr_RibCXR_train_mask.json
      data/val/img/..., data/val/Vindr_RibCXR_val_mask.json

The tables are found anywhere below the root by these names, or by the names
``VinDr_RibCXR_train.json`` / ``VinDr_RibCXR_val.json`` that earlier fxmm versions asked for.

Each JSON is column-oriented (pandas ``to_json``): ``{"img": {"0": <image name>, ...},
"R1": {"0": [{"x": .., "y": ..}, ...], ...}, ..., "L10": {...}}``; a rib that is not visible
is the string ``"None"``. Each rib is one polygon (vertices at pixel centres, see
:mod:`.masks`). R ribs are the patient's right (the image's left); a flip swaps Ri and Li.
Splits: the official train (val drawn from it, seeded) and val = our test. Usage::

    python data_converters/vindr_ribcxr.py --root data/cxr/VinDr-RibCXR
"""
import os.path as osp
import sys
from typing import List

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.masks import encode_masks, rasterise_polygons  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.tables import find_file, read_json  # noqa: E402

RIBS = tuple(f'R{i}' for i in range(1, 11)) + tuple(f'L{i}' for i in range(1, 11))


class VinDrRibCXRConverter(BaseConverter):
    """VinDr-RibCXR: column-oriented JSON polygons of 20 ribs."""

    dataset = 'vindr_ribcxr'
    tasks = ('seg', )
    seg_classes = RIBS
    lr_pairs = tuple((f'L{i}', f'R{i}') for i in range(1, 11))
    source = ('VinDr-RibCXR, Nguyen et al., "VinDr-RibCXR: A benchmark dataset for automatic '
              'segmentation and labeling of individual ribs on chest X-rays", MIDL 2021')
    # official part -> (the names its table is looked for by, our split)
    official = {
        'train': (('Vindr_RibCXR_train_mask.json', 'VinDr_RibCXR_train.json'), 'trainval'),
        'val': (('Vindr_RibCXR_val_mask.json', 'VinDr_RibCXR_val.json'), 'test'),
    }

    def collect(self, report: ConversionReport) -> List[dict]:
        files = self.index_files(('.png', '.jpg', '.jpeg'), by_stem=False, report=report)
        records = []
        for part, (names, split) in self.official.items():
            path = find_file(self.root, names, f'VinDr-RibCXR {part} annotations')
            json_name = osp.basename(path)
            table = read_json(path, dict, ('img', ) + RIBS, dict)  # column -> row -> value
            for row, name in table['img'].items():
                image = osp.basename(str(name))
                where = f'{json_name} row {row}'
                try:
                    ribs = {rib: self._polygon(table[rib].get(row), f'{where} {rib}')
                            for rib in RIBS}
                except ValueError as err:
                    report.skip(image, str(err))
                    continue
                if image not in files:
                    report.skip(image, f'image file {image} not found under {self.root}')
                    continue
                records.append(dict(key=image, img_file=files[image], split=split,
                                    patient_id=osp.splitext(image)[0], ribs=ribs, where=where))
        return records

    @staticmethod
    def _polygon(points, where: str):
        """``[{'x', 'y'}, ...]`` -> ``[[x, y], ...]``; ``"None"`` (rib not visible) -> None."""
        if points is None or points == 'None':
            return None
        try:
            return [[float(p['x']), float(p['y'])] for p in points]
        except (TypeError, KeyError, ValueError):
            raise ValueError(f'{where}: expected a list of {{"x": .., "y": ..}} points or '
                             f'"None", got {str(points)[:80]}') from None

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        masks = {rib: rasterise_polygons([polygon], height, width, f'{record["where"]} {rib}')
                 for rib, polygon in record['ribs'].items() if polygon is not None}
        return dict(seg=encode_masks(masks))


if __name__ == '__main__':
    sys.exit(VinDrRibCXRConverter.main())
