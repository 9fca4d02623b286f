# CheXpert: cls. Converted from the official download by
#   python data_converters/chexpert.py --root data/cxr/CheXpert-v1.0-small
# (docs/datasets.md). Splits: official valid.csv = test; val = 10% of the train.csv patients (seeded).
# Ark / Foundation X: uncertain -> U(0.55, 0.85) (LSR), blank -> 0 when training; the test
# split (the radiologists' valid.csv) has no uncertain labels
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
chexpert_data = dict(
    name='chexpert',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='CheXpert-v1.0-small/',  # the official folder, under the config's data root
    tasks=['cls'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity',
                 'Lung Lesion', 'Edema', 'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax',
                 'Pleural Effusion', 'Pleural Other', 'Fracture', 'Support Devices'],
    det_classes=[],
    seg_classes=[],
    train_kwargs=dict(label_policy=dict(type='lsr', missing_as_zero=True)),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
