"""Shenzhen chest X-ray set -> fxmm annotations (cls: TB).

Official layout (NLM, ``ChinaSet_AllFiles.zip``)::

    ChinaSet_AllFiles/
      CXR_png/CHNCXR_0001_0.png ...    the suffix is the label: _0 normal, _1 TB
      ClinicalReadings/CHNCXR_0001_0.txt

One image per patient; no official split: patient-level, seeded. Usage::

    python data_converters/shenzhen.py --root data/cxr/ChinaSet_AllFiles
"""
import os.path as osp
import re
import sys
from typing import List, Optional

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402


def nlm_tb_label(file_name: str, prefix: str) -> Optional[int]:
    """The TB label of an NLM set file name ``<prefix>_<number>_<0|1>.png``, None if the name
    does not follow that pattern."""
    match = re.fullmatch(rf'{prefix}_\d+_([01])\.png', file_name, flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


class ShenzhenConverter(BaseConverter):
    """Shenzhen: PNGs under ``CXR_png/`` labelled by their name's suffix."""

    dataset = 'shenzhen'
    tasks = ('cls', )
    cls_classes = ('TB', )
    source = ('Shenzhen set, Jaeger et al., "Two public chest X-ray datasets for computer-aided '
              'screening of pulmonary diseases", QIMS 2014')
    prefix = 'CHNCXR'

    def collect(self, report: ConversionReport) -> List[dict]:
        records = []
        images = self.index_files(('.png', ), by_stem=False, report=report, parent='CXR_png')
        for name, path in sorted(images.items()):
            label = nlm_tb_label(name, self.prefix)
            if label is None:
                report.skip(name, f'file name does not match {self.prefix}_<number>_<0|1>.png')
                continue
            records.append(dict(key=name, img_file=path, split=None,
                                patient_id=name.rsplit('_', 1)[0], label=label))
        if not records:
            raise FileNotFoundError(f'no {self.prefix}_*.png images in a CXR_png folder under '
                                    f'{self.root}')
        return records

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        return dict(cls_label=[record['label']])


if __name__ == '__main__':
    sys.exit(ShenzhenConverter.main())
