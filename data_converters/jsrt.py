"""JSRT images + SCR masks -> fxmm annotations (seg: heart, lungs, clavicles).

Official layout (JSRT database + the SCR database of masks, unpacked into one folder)::

    JSRT/
      All247images/JPCLN001.IMG ... JPCNN093.IMG    2048 x 2048 raw, big-endian uint16,
                                                     12 bits used, no header, high = dark
      scr/fold1/masks/heart/JPCLN001.gif             1024 x 1024 masks (0 / 255), one folder
      scr/fold1/masks/left lung/..., right lung/,    per structure; fold1 / fold2 = SCR's
          left clavicle/, right clavicle/            official two folds
      scr/fold2/masks/...

The masks are drawn at half the image resolution. The image is brought to the mask grid:
it is decoded (inverted, so high = bright), averaged over 2 x 2 blocks (``cv2.INTER_AREA``)
and written once as a 16-bit PNG under ``<out>/png/``, which ``img_path`` points to; the masks
stay as drawn (pixel spacing 0.35 mm). Left/right are the patient's, as SCR names them.
Splits: SCR fold1 (val drawn from it, seeded) and fold2 = test; without folds, seeded.
Usage::

    python data_converters/jsrt.py --root data/cxr/JSRT
"""
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Tuple

import cv2
import numpy as np

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.masks import encode_masks, read_mask_image  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from fxmm.datasets.image_io import read_cxr_image  # noqa: E402

# our class name -> SCR folder name
SCR_STRUCTURES = {'heart': 'heart', 'left_lung': 'left lung', 'right_lung': 'right lung',
                  'left_clavicle': 'left clavicle', 'right_clavicle': 'right clavicle'}
_FOLDS = {'fold1': 'trainval', 'fold2': 'test'}


class JSRTConverter(BaseConverter):
    """JSRT + SCR: raw ``.IMG`` images brought to the 1024 x 1024 grid of the GIF masks."""

    dataset = 'jsrt'
    tasks = ('seg', )
    seg_classes = tuple(SCR_STRUCTURES)
    lr_pairs = (('left_lung', 'right_lung'), ('left_clavicle', 'right_clavicle'))
    source = ('JSRT database, Shiraishi et al., AJR 2000; SCR masks, van Ginneken et al., '
              '"Segmentation of anatomical structures in chest radiographs using supervised '
              'methods", MedIA 2006')

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.to_png = True  # the image must be resampled: always a PNG copy

    def collect(self, report: ConversionReport) -> List[dict]:
        images = self.index_files(('.img', ), report=report)
        masks, folds = self._index_masks(report)
        records = []
        for stem, img_file in sorted(images.items()):
            found = masks.get(stem, {})
            missing = [SCR_STRUCTURES[n] for n in SCR_STRUCTURES if n not in found]
            if missing:
                report.skip(stem, f'no SCR mask for {missing} (folders named after each '
                            f'structure, holding {stem}.gif)')
                continue
            records.append(dict(key=stem, img_file=img_file, split=folds.get(stem),
                                patient_id=stem, masks=found))
        for stem in sorted(set(masks) - set(images)):
            report.skip(stem, f'SCR masks but no image file {stem}.IMG under {self.root}')
        return records

    def _index_masks(self, report: ConversionReport
                     ) -> Tuple[Dict[str, Dict[str, str]], Dict[str, str]]:
        """stem -> {class name: GIF path}, and stem -> split from the fold folder."""
        folder_to_class = {v: k for k, v in SCR_STRUCTURES.items()}
        masks: Dict[str, Dict[str, str]] = {}
        folds: Dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            name = folder_to_class.get(re.sub(r'[_\s]+', ' ', osp.basename(dirpath).lower()))
            if name is None:
                continue
            fold = next((_FOLDS[p] for p in dirpath.split(os.sep) if p in _FOLDS), None)
            for file_name in sorted(filenames):
                stem, ext = osp.splitext(file_name)
                if ext.lower() != '.gif':
                    continue
                if name in masks.setdefault(stem, {}):
                    report.count('duplicate SCR masks (first kept)')
                    continue
                masks[stem][name] = osp.join(dirpath, file_name)
                if fold is not None:
                    folds[stem] = fold
        return masks, folds

    def load_image(self, record: dict) -> Tuple[np.ndarray, dict]:
        """Decode the raw image and average it down to the grid of its masks."""
        img, meta = read_cxr_image(record['img_file'])
        height, width = read_mask_image(record['masks']['heart']).shape
        factor = img.shape[0] / height
        if img.shape[0] % height or img.shape[1] * height != img.shape[0] * width:
            raise ValueError(f'{record["img_file"]}: image {img.shape} is not a whole multiple '
                             f'of its masks ({height}, {width})')
        if factor != 1:
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
            if meta.get('pixel_spacing'):
                meta['pixel_spacing'] = tuple(s * factor for s in meta['pixel_spacing'])
        return img, meta

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        masks = {}
        for name, path in record['masks'].items():
            mask = read_mask_image(path)
            if mask.shape != img.shape:
                raise ValueError(f'SCR mask {path} has shape {mask.shape}, the others '
                                 f'{img.shape}')
            masks[name] = mask
        return dict(seg=encode_masks(masks))


if __name__ == '__main__':
    sys.exit(JSRTConverter.main())
