"""VinDr-CXR organ masks from CheXmask -> fxmm annotations (loc, seg: lungs and heart).

Needs two downloads: the VinDr-CXR images (``--root``, as for :mod:`.vindr_cxr`) and the
CheXmask table of VinDr-CXR (``--chexmask-csv``; PhysioNet ``chexmask-cxr-segmentation-data``,
``OriginalResolution/VinDr-CXR.csv``)::

    image_id, Dice RCA (Mean), Dice RCA (Max), Landmarks, Left Lung, Right Lung, Heart,
    Height, Width

Each mask is a CheXmask RLE (1-indexed absolute starts, row-major) on the ``Height`` x
``Width`` grid, which must be the DICOM's size. The box of an organ encloses its whole mask.
``--min-dice-rca`` drops masks whose estimated quality (RCA Dice, the CheXmask paper's
measure) is lower; the report counts them and lists each with its Dice RCA. Written as
``annotations/organs_<split>.json`` beside the VinDr-CXR findings; splits as VinDr-CXR's, by
the image's official folder (``train/``, with val drawn from it seeded by image id, and
``test/``), so that with the same ``--split-seed`` and fractions an image has the same split
in both (an image in neither folder is drawn into train / val / test like a dataset without
official splits). Usage::

    python data_converters/vindr_cxr_organs.py --root data/cxr/vindr-cxr \\
        --chexmask-csv data/cxr/CheXmask/OriginalResolution/VinDr-CXR.csv
"""
import argparse
import os.path as osp
import sys
from typing import List

import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.masks import encode_masks, mask_extent  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.run_length import decode_chexmask_rle  # noqa: E402
from data_converters.tables import parse_number, read_table  # noqa: E402

# our class name -> CheXmask column
CHEXMASK_ORGANS = {'left_lung': 'Left Lung', 'right_lung': 'Right Lung', 'heart': 'Heart'}
_VINDR_PARTS = {'train': 'trainval', 'test': 'test'}


class VinDrCXROrgansConverter(BaseConverter):
    """CheXmask lungs and heart of the VinDr-CXR images.

    Args:
        chexmask_csv (str): The CheXmask table of VinDr-CXR.
        min_dice_rca (float): Skip images whose ``Dice RCA (Mean)`` is lower. Defaults to 0.7.
        **kwargs: See :class:`~data_converters.common.BaseConverter`.
    """

    dataset = 'vindr_cxr_organs'
    tasks = ('loc', 'seg')
    det_classes = tuple(CHEXMASK_ORGANS)
    seg_classes = tuple(CHEXMASK_ORGANS)
    lr_pairs = (('left_lung', 'right_lung'), )
    source = ('CheXmask, Gaggion et al., "CheXmask: a large-scale dataset of anatomical '
              'segmentation masks for multi-center chest x-ray images", Scientific Data 2024; '
              'images: VinDr-CXR')
    ann_prefix = 'organs_'

    def __init__(self, chexmask_csv: str, min_dice_rca: float = 0.7, **kwargs) -> None:
        super().__init__(**kwargs)
        if not osp.isfile(chexmask_csv):
            raise FileNotFoundError(f'CheXmask table {chexmask_csv!r} not found')
        self.chexmask_csv = osp.abspath(chexmask_csv)
        self.min_dice_rca = min_dice_rca

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--chexmask-csv', required=True,
                            help='CheXmask OriginalResolution/VinDr-CXR.csv')
        parser.add_argument('--min-dice-rca', type=float, default=0.7,
                            help='skip masks whose "Dice RCA (Mean)" is lower')

    def options(self) -> dict:
        return dict(chexmask_csv=self.chexmask_csv)

    def collect(self, report: ConversionReport) -> List[dict]:
        files = self.index_files(('.dicom', '.dcm'), report=report)
        name = osp.basename(self.chexmask_csv)
        columns = ('image_id', 'Dice RCA (Mean)', 'Height', 'Width') + tuple(
            CHEXMASK_ORGANS.values())
        records = []
        for line, row in read_table(self.chexmask_csv, columns, report, key_column='image_id'):
            image_id, where = row['image_id'], f'{name} line {line}'
            try:
                dice = parse_number(row['Dice RCA (Mean)'], f'{where} Dice RCA (Mean)')
                height, width = (int(parse_number(row[c], f'{where} {c}'))
                                 for c in ('Height', 'Width'))
            except ValueError as err:
                report.skip(image_id, str(err))
                continue
            if dice < self.min_dice_rca:
                report.count(f'images with Dice RCA below {self.min_dice_rca} left out')
                report.skip(image_id, f'{where}: Dice RCA (Mean) {dice:g} is below '
                            f'--min-dice-rca {self.min_dice_rca:g}')
                continue
            if image_id not in files:
                report.skip(image_id, f'image file {image_id}.dicom not found under {self.root}')
                continue
            part = osp.basename(osp.dirname(files[image_id]))
            records.append(dict(key=image_id, img_file=files[image_id],
                                split=_VINDR_PARTS.get(part), patient_id=image_id,
                                height=height, width=width, where=where,
                                rles={n: row[c] for n, c in CHEXMASK_ORGANS.items()}))
        return records

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        if img.shape != (record['height'], record['width']):
            raise ValueError(f'{record["where"]}: Height x Width {record["height"]} x '
                             f'{record["width"]} differs from the image {img.shape[0]} x '
                             f'{img.shape[1]}')
        masks, instances = {}, []
        for label, (organ, text) in enumerate(record['rles'].items()):
            masks[organ] = mask = decode_chexmask_rle(
                text, record['height'], record['width'], f'{record["where"]} {organ}')
            box = mask_extent(mask)
            if box is not None:
                instances.append(dict(bbox=box, bbox_label=label))
        return dict(instances=instances, seg=encode_masks(masks))


if __name__ == '__main__':
    sys.exit(VinDrCXROrgansConverter.main())
