# MIMIC-CXR-JPG: cls. Converted from the official download by
#   python data_converters/mimic_cxr.py --root data/cxr/mimic-cxr-jpg
# (docs/datasets.md). Splits: the official mimic-cxr-2.0.0-split.csv (patient = subject_id).
# Ark: uncertain -> 1 (U-ones), blank (not mentioned) -> 0, for training and testing
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
mimic_cxr_data = dict(
    name='mimic_cxr',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='mimic-cxr-jpg/',  # the official folder, under the config's data root
    tasks=['cls'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity',
                 'Lung Lesion', 'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax',
                 'Pleural Effusion', 'Pleural Other', 'Fracture', 'Support Devices'],
    det_classes=[],
    seg_classes=[],
    train_kwargs=dict(label_policy=dict(type='ones', missing_as_zero=True)),  # extra CXRDataset arguments, train split
    test_kwargs=dict(label_policy=dict(type='ones', missing_as_zero=True)),  # extra CXRDataset arguments, val/test splits
)
