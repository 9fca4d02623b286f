# MIMIC-CXR-JPG (cls), converted from the official download by
#   python data_converters/mimic_cxr.py --root data/cxr/mimic-cxr-jpg
# Splits: the official mimic-cxr-2.0.0-split.csv (patient = subject_id).
# Labels are raw; as in Ark, uncertain -> 1 (U-ones) and blank -> 0, in training and testing.
# A config builds its datasets from `mimic_cxr_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
mimic_cxr_data = dict(
    name='mimic_cxr',  # metainfo 'dataset': names its heads, losses and metrics
    folder='mimic-cxr-jpg/',  # official folder name, under the data root
    tasks=['cls'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity',
                 'Lung Lesion', 'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis',
                 'Pneumothorax', 'Pleural Effusion', 'Pleural Other', 'Fracture',
                 'Support Devices'],
    det_classes=[],
    seg_classes=[],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(label_policy=dict(type='ones', missing_as_zero=True)),
    test_kwargs=dict(label_policy=dict(type='ones', missing_as_zero=True)),
)
