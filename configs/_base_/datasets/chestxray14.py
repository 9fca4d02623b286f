# ChestX-ray14 (NIH) (cls, loc), converted from the official download by
#   python data_converters/chestxray14.py --root data/cxr/CXR8
# Splits: the official test_list.txt; val = 10% of the train_val_list.txt patients.
# Boxes exist for ~1000 test images only: a detection config should add
# filter_cfg=dict(filter_empty_gt=True).
# A config builds its datasets from `chestxray14_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
chestxray14_data = dict(
    name='chestxray14',  # metainfo 'dataset': names its heads, losses and metrics
    folder='CXR8/',  # official folder name, under the data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule',
                 'Pneumonia', 'Pneumothorax', 'Consolidation', 'Edema', 'Emphysema', 'Fibrosis',
                 'Pleural_Thickening', 'Hernia'],
    det_classes=['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule',
                 'Pneumonia', 'Pneumothorax'],
    seg_classes=[],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
