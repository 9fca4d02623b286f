# VinDr-CXR: cls, loc. Converted from the official download by
#   python data_converters/vindr_cxr.py --root data/cxr/vindr-cxr
# (docs/datasets.md). Splits: official test; val = 10% of the official train images (seeded).
# image labels = OR of the 3 readers; boxes fused across readers (--boxes wbf, default)
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
vindr_cxr_data = dict(
    name='vindr_cxr',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='vindr-cxr/',  # the official folder, under the config's data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Lung tumor', 'Pneumonia', 'Tuberculosis', 'Other diseases', 'COPD', 'No finding'],
    det_classes=['Aortic enlargement', 'Atelectasis', 'Calcification', 'Cardiomegaly',
                 'Clavicle fracture', 'Consolidation', 'Edema', 'Emphysema', 'Enlarged PA', 'ILD',
                 'Infiltration', 'Lung Opacity', 'Lung cavity', 'Lung cyst', 'Mediastinal shift',
                 'Nodule/Mass', 'Pleural effusion', 'Pleural thickening', 'Pneumothorax',
                 'Pulmonary fibrosis', 'Rib fracture', 'Other lesion'],
    seg_classes=[],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
