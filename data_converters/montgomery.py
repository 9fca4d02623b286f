"""Montgomery County chest X-ray set -> fxmm annotations (seg: two lungs, cls: TB).

Official layout (NLM, ``NLM-MontgomeryCXRSet.zip``)::

    MontgomerySet/
      CXR_png/MCUCXR_0001_0.png ...          the suffix is the label: _0 normal, _1 TB
      ManualMask/leftMask/MCUCXR_0001_0.png  binary lung masks (0 / 255), image size
      ManualMask/rightMask/MCUCXR_0001_0.png
      ClinicalReadings/MCUCXR_0001_0.txt

The masks keep the dataset's folder names: ``leftMask`` -> ``left_lung``, ``rightMask`` ->
``right_lung``; a horizontal flip swaps them. An image without both masks is skipped. No
official split: patient-level, seeded. Usage::

    python data_converters/montgomery.py --root data/cxr/MontgomerySet
"""
import os.path as osp
import sys
from typing import List

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.masks import encode_masks, read_mask_image  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.shenzhen import ShenzhenConverter  # noqa: E402

# our class name -> the dataset's mask folder
MONTGOMERY_MASKS = {'left_lung': 'leftMask', 'right_lung': 'rightMask'}


class MontgomeryConverter(ShenzhenConverter):
    """Montgomery: PNGs under ``CXR_png/`` with left/right lung masks."""

    dataset = 'montgomery'
    tasks = ('cls', 'seg')
    seg_classes = tuple(MONTGOMERY_MASKS)
    lr_pairs = (('left_lung', 'right_lung'), )
    source = ('Montgomery County set, Jaeger et al., "Two public chest X-ray datasets for '
              'computer-aided screening of pulmonary diseases", QIMS 2014')
    prefix = 'MCUCXR'

    def collect(self, report: ConversionReport) -> List[dict]:
        records = []
        for record in super().collect(report):
            image_dir = osp.dirname(osp.dirname(record['img_file']))
            masks = {name: osp.join(image_dir, 'ManualMask', folder, record['key'])
                     for name, folder in MONTGOMERY_MASKS.items()}
            missing = [p for p in masks.values() if not osp.isfile(p)]
            if missing:
                report.skip(record['key'], f'mask file {missing[0]} not found')
                continue
            records.append(dict(record, masks=masks))
        return records

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        masks = {}
        for name, path in record['masks'].items():
            mask = read_mask_image(path)
            if mask.shape != img.shape:
                raise ValueError(f'mask {path} has shape {mask.shape}, the image {img.shape}')
            masks[name] = mask
        return dict(cls_label=[record['label']], seg=encode_masks(masks))


if __name__ == '__main__':
    sys.exit(MontgomeryConverter.main())
