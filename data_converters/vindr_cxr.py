"""VinDr-CXR -> fxmm annotations (cls: 6 global labels, loc: 22 local findings).

Official layout (PhysioNet ``vindr-cxr/1.0.0``)::

    vindr-cxr/
      annotations/annotations_train.csv    image_id, rad_id, class_name, x_min, y_min, x_max,
      annotations/annotations_test.csv     y_max (blank/NaN for "No finding"); test: consensus
      annotations/image_labels_train.csv   image_id, rad_ID, <28 labels as 0/1> (one row per
      annotations/image_labels_test.csv    radiologist; test: consensus)
      train/<image_id>.dicom, test/<image_id>.dicom

The Kaggle competition's copy (``vinbigdata-chest-xray-abnormalities-detection``) has only a
findings table, ``train.csv`` (the same columns plus ``class_id``; some of the 22 local
findings, and "No finding"), and unlabelled ``test/`` images. Where a part's label table is
missing, its global labels cannot be had, save "No finding": that one is 1 when a reader
wrote a "No finding" row (as the OR of the label table's column over the readers), else 0;
the other five are null. The report and the console say so, and what else the found files
lack (no test part, local findings without a box).

Every training image was read by 3 radiologists: an image label is the OR over its readers.
Boxes are kept per reader (``--boxes per-reader``, each instance names its ``reader``) or
fused across readers (``wbf``: boxes of a class that overlap by ``--fuse-iou`` are averaged;
``union``: replaced by their enclosing box); the official test boxes, a consensus, are kept
as they are. Splits: official train (val drawn from it, seeded)
and test. Image ids are the only patient key of this de-identified dataset. Usage::

    python data_converters/vindr_cxr.py --root data/cxr/vindr-cxr --boxes wbf
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
from pycocotools import mask as mask_utils

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.common import BaseConverter  # noqa: E402
from data_converters.masks import check_box  # noqa: E402
from data_converters.report import ConversionReport  # noqa: E402
from data_converters.tables import (find_file, is_blank, parse_number, read_header,  # noqa: E402
                                    read_table)

# the 22 local labels (boxes), in the order of the dataset paper
VINDR_LOCAL = ('Aortic enlargement', 'Atelectasis', 'Calcification', 'Cardiomegaly',
               'Clavicle fracture', 'Consolidation', 'Edema', 'Emphysema', 'Enlarged PA', 'ILD',
               'Infiltration', 'Lung Opacity', 'Lung cavity', 'Lung cyst', 'Mediastinal shift',
               'Nodule/Mass', 'Pleural effusion', 'Pleural thickening', 'Pneumothorax',
               'Pulmonary fibrosis', 'Rib fracture', 'Other lesion')
# the 6 global labels used by Ark / Foundation X
VINDR_GLOBAL = ('Lung tumor', 'Pneumonia', 'Tuberculosis', 'Other diseases', 'COPD', 'No finding')
# the global label a findings table gives (its readers' "No finding" rows)
NO_FINDING = 'No finding'
# spellings of the global label columns seen in the releases
_GLOBAL_ALIASES = {'Other diseases': ('Other diseases', 'Other disease')}
BOX_MODES = ('per-reader', 'wbf', 'union')


def fuse_boxes(instances: List[dict], method: str, iou_thr: float) -> List[dict]:
    """Fuse the boxes of several readers, class by class.

    Boxes are taken in reader order; each joins the cluster whose fused box it overlaps most,
    among the clusters holding no box of its reader, if that IoU (pycocotools) is >=
    ``iou_thr``, else starts a cluster: two boxes of one reader are two findings, never
    fused. A box without a reader (a consensus box) stays as it is. A cluster's box is the
    mean of its members (``'wbf'``, weighted box fusion with equal weights, as readers give no
    scores) or their enclosing box (``'union'``).

    Args:
        instances (list[dict]): ``{'bbox': [x1, y1, x2, y2], 'bbox_label': int, 'reader': str}``.
        method (str): ``'wbf'`` or ``'union'``.
        iou_thr (float): Minimum IoU to join a cluster.

    Returns:
        list[dict]: One instance per cluster, ``reader`` = the comma-joined readers.
    """
    fused = []
    for label in sorted({inst['bbox_label'] for inst in instances}):
        members = sorted((inst for inst in instances if inst['bbox_label'] == label),
                         key=lambda inst: (inst.get('reader') or '', inst['bbox']))
        clusters: List[List[dict]] = []
        boxes: List[np.ndarray] = []  # fused box of each cluster
        for inst in members:
            box = np.asarray(inst['bbox'], dtype=np.float64)
            reader = inst.get('reader')
            open_ = [i for i, cluster in enumerate(clusters) if reader is not None and all(
                m.get('reader') not in (None, reader) for m in cluster)]
            if open_:
                ious = mask_utils.iou(_xywh(box[None]), _xywh(np.stack([boxes[i] for i in open_])),
                                      [0] * len(open_))[0]
                best = open_[int(np.argmax(ious))]
                if ious.max() >= iou_thr:
                    clusters[best].append(inst)
                    coords = np.asarray([m['bbox'] for m in clusters[best]])
                    boxes[best] = (coords.mean(axis=0) if method == 'wbf' else
                                   np.concatenate([coords[:, :2].min(0), coords[:, 2:].max(0)]))
                    continue
            clusters.append([inst])
            boxes.append(box)
        for cluster, box in zip(clusters, boxes):
            readers = sorted({m['reader'] for m in cluster if m.get('reader')})
            fused.append(dict(bbox=[float(v) for v in box], bbox_label=label,
                              reader=','.join(readers) or None))
    return fused


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


class VinDrCXRConverter(BaseConverter):
    """VinDr-CXR: findings (boxes per reader or fused) and global labels (OR of readers).

    Args:
        boxes (str): ``'per-reader'``, ``'wbf'`` or ``'union'``. Defaults to ``'wbf'``.
        fuse_iou (float): IoU for fusing boxes of one class. Defaults to 0.4.
        **kwargs: See :class:`~data_converters.common.BaseConverter`.
    """

    dataset = 'vindr_cxr'
    tasks = ('cls', 'loc')
    cls_classes = VINDR_GLOBAL
    det_classes = VINDR_LOCAL
    source = ('VinDr-CXR, Nguyen et al., "VinDr-CXR: An open dataset of chest X-rays with '
              "radiologist's annotations\", Scientific Data 2022, "
              'https://physionet.org/content/vindr-cxr/1.0.0/')
    # official part -> (findings tables, label tables, our split)
    parts = {
        'train': (('annotations_train.csv', 'train.csv'), ('image_labels_train.csv', ),
                  'trainval'),
        'test': (('annotations_test.csv', ), ('image_labels_test.csv', ), 'test'),
    }

    def __init__(self, boxes: str = 'wbf', fuse_iou: float = 0.4, **kwargs) -> None:
        if boxes not in BOX_MODES:
            raise ValueError(f'boxes must be one of {BOX_MODES}, got {boxes!r}')
        if not 0 < fuse_iou <= 1:
            raise ValueError(f'fuse_iou must be in (0, 1], got {fuse_iou}')
        super().__init__(**kwargs)
        self.boxes = boxes
        self.fuse_iou = fuse_iou

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('--boxes', choices=BOX_MODES, default='wbf',
                            help='keep each reader\'s boxes, or fuse them')
        parser.add_argument('--fuse-iou', type=float, default=0.4,
                            help='IoU at which boxes of one class are fused')

    def options(self) -> dict:
        return dict(boxes=self.boxes, fuse_iou=self.fuse_iou)

    def collect(self, report: ConversionReport) -> List[dict]:
        files = self.index_files(('.dicom', '.dcm'), report=report)
        records = []
        for part, (finding_names, label_names, split) in self.parts.items():
            try:
                findings = find_file(self.root, finding_names, f'VinDr-CXR {part} findings')
            except FileNotFoundError:
                if part == 'test':  # a training-only copy (e.g. the Kaggle competition's)
                    report.note(f'no official test tables ({finding_names[0]}, '
                                f'{label_names[0]}; the Kaggle copy has none): no test split '
                                'is written')
                    continue
                raise
            boxes, no_finding = self._read_findings(findings, report)
            label_table = self._optional(label_names)
            if label_table is None:
                labels = {image_id: self._no_finding_label(image_id in no_finding)
                          for image_id in boxes}
                others = [c for c in VINDR_GLOBAL if c != NO_FINDING]
                report.note(
                    f'{part}: {osp.basename(findings)} without {label_names[0]} (the Kaggle '
                    f'copy has none): the global labels {others} are missing (null) for its '
                    f'{len(labels)} images; {NO_FINDING!r} is 1 where a reader wrote a '
                    f'{NO_FINDING!r} row, else 0. PhysioNet\'s {label_names[0]} gives all six')
            else:
                labels = self._read_labels(label_table, report)
            for image_id in sorted(set(boxes) | set(labels)):
                if image_id in report:
                    continue
                if image_id not in files:
                    report.skip(image_id, f'image file {image_id}.dicom not found under '
                                f'{self.root}')
                    continue
                records.append(dict(key=image_id, img_file=files[image_id], split=split,
                                    patient_id=image_id, boxes=boxes.get(image_id, []),
                                    cls_label=labels.get(image_id, [None] * len(VINDR_GLOBAL))))
        return records

    def _optional(self, names) -> Optional[str]:
        try:
            return find_file(self.root, names, 'VinDr-CXR image labels')
        except FileNotFoundError:
            return None

    @staticmethod
    def _no_finding_label(no_finding: bool) -> list:
        """The 6 global labels a findings table gives: "No finding" only, the others null."""
        return [int(no_finding) if cls == NO_FINDING else None for cls in VINDR_GLOBAL]

    @staticmethod
    def _read_findings(path: str,
                       report: ConversionReport) -> Tuple[Dict[str, List[dict]], Set[str]]:
        """A findings table's boxes, image id -> [{'bbox', 'bbox_label', 'reader'}], and the
        ids of the images with a "No finding" row."""
        name = osp.basename(path)
        boxes: Dict[str, List[dict]] = {}
        no_finding: Set[str] = set()
        columns = ('image_id', 'class_name', 'x_min', 'y_min', 'x_max', 'y_max')
        for line, row in read_table(path, columns, report, key_column='image_id'):
            image_id, cls = row['image_id'], row['class_name']
            items = boxes.setdefault(image_id, [])
            if cls == NO_FINDING:
                no_finding.add(image_id)
            if cls in VINDR_GLOBAL:
                continue  # global labels carry no box
            where = f'{name} line {line}'
            if cls not in VINDR_LOCAL:
                report.skip(image_id, f'{where}: unknown class_name {cls!r}')
                continue
            try:
                box = [parse_number(row[c], f'{where} {c}')
                       for c in ('x_min', 'y_min', 'x_max', 'y_max')]
            except ValueError as err:
                report.skip(image_id, str(err))
                continue
            reader = row.get('rad_id') or row.get('rad_ID')
            items.append(dict(bbox=box, bbox_label=VINDR_LOCAL.index(cls),
                              reader=None if is_blank(reader) else reader, where=where))
        return boxes, no_finding

    @staticmethod
    def _read_labels(path: Optional[str], report: ConversionReport) -> Dict[str, list]:
        """image id -> the 6 global labels, OR over the readers' rows."""
        if path is None:
            return {}
        name = osp.basename(path)
        header = read_header(path)
        columns = {}
        for cls in VINDR_GLOBAL:
            found = [a for a in _GLOBAL_ALIASES.get(cls, (cls, )) if a in header]
            if not found:
                raise ValueError(f'{path}: no column for the global label {cls!r}')
            columns[cls] = found[0]
        labels: Dict[str, list] = {}
        for line, row in read_table(path, ('image_id', ), report, key_column='image_id'):
            image_id = row['image_id']
            try:
                values = [int(parse_number(row[columns[c]], f'{name} line {line} {c}'))
                          for c in VINDR_GLOBAL]
                if set(values) - {0, 1}:
                    raise ValueError(f'{name} line {line}: labels must be 0 or 1, got {values}')
            except ValueError as err:
                report.skip(image_id, str(err))
                continue
            previous = labels.get(image_id, [0] * len(VINDR_GLOBAL))
            labels[image_id] = [max(a, b) for a, b in zip(previous, values)]
        return labels

    def annotate(self, record: dict, img: np.ndarray) -> dict:
        height, width = img.shape
        instances = [dict(bbox=check_box(inst['bbox'], height, width, inst['where']),
                          bbox_label=inst['bbox_label'], reader=inst['reader'])
                     for inst in record['boxes']]
        if self.boxes != 'per-reader' and record['split'] != 'test':  # test: the consensus
            instances = fuse_boxes(instances, self.boxes, self.fuse_iou)
        return dict(cls_label=record['cls_label'], instances=instances)


if __name__ == '__main__':
    sys.exit(VinDrCXRConverter.main())
