# CheXpert (cls), converted from the official download by
#   python data_converters/chexpert.py --root data/cxr/CheXpert-v1.0-small
# Splits: the official valid.csv is the test split; val = 10% of the train.csv patients.
# Labels are raw (1 / 0 / -1 / null); as in Ark, training maps uncertain to U(0.55, 0.85)
# (LSR) and blank to 0. The radiologist-labelled test split has no uncertain or blank labels;
# the val split (from train.csv) has both: blank -> 0, as in training, and uncertain is left
# out of its AUC.
# A config builds its datasets from `chexpert_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
# CheXpert's 5 competition classes: Foundation X reports the CheXpert and MIMIC-CXR AUCs on
# them (method.md section 1, Evaluation), Ark the CheXpert AUC
chexpert_competition_classes = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema',
                                'Pleural Effusion']
chexpert_data = dict(
    name='chexpert',  # metainfo 'dataset': names its heads, losses and metrics
    folder='CheXpert-v1.0-small/',  # official folder name, under the data root
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
    train_kwargs=dict(label_policy=dict(type='lsr', missing_as_zero=True)),
    test_kwargs=dict(label_policy=dict(type='ignore', missing_as_zero=True)),
)
