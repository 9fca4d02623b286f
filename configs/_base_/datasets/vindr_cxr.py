# VinDr-CXR (cls, loc), converted from the official download by
#   python data_converters/vindr_cxr.py --root data/cxr/vindr-cxr
# Splits: the official test; val = 10% of the official train images.
# Image labels = OR of the 3 readers; boxes fused across readers (--boxes wbf, default).
# A config builds its datasets from `vindr_cxr_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
vindr_cxr_data = dict(
    name='vindr_cxr',  # metainfo 'dataset': names its heads, losses and metrics
    folder='vindr-cxr/',  # official folder name, under the data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Lung tumor', 'Pneumonia', 'Tuberculosis', 'Other diseases', 'COPD',
                 'No finding'],
    det_classes=['Aortic enlargement', 'Atelectasis', 'Calcification', 'Cardiomegaly',
                 'Clavicle fracture', 'Consolidation', 'Edema', 'Emphysema', 'Enlarged PA', 'ILD',
                 'Infiltration', 'Lung Opacity', 'Lung cavity', 'Lung cyst', 'Mediastinal shift',
                 'Nodule/Mass', 'Pleural effusion', 'Pleural thickening', 'Pneumothorax',
                 'Pulmonary fibrosis', 'Rib fracture', 'Other lesion'],
    seg_classes=[],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
