# ChestX-ray14 (NIH): cls, loc. Converted from the official download by
#   python data_converters/chestxray14.py --root data/cxr/CXR8
# (docs/datasets.md). Splits: official test_list.txt; val = 10% of the train_val_list.txt patients (seeded).
# boxes exist for ~1000 test images only: for detection use filter_cfg=dict(filter_empty_gt=True)
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
chestxray14_data = dict(
    name='chestxray14',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='CXR8/',  # the official folder, under the config's data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule', 'Pneumonia',
                 'Pneumothorax', 'Consolidation', 'Edema', 'Emphysema', 'Fibrosis',
                 'Pleural_Thickening', 'Hernia'],
    det_classes=['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', 'Nodule', 'Pneumonia',
                 'Pneumothorax'],
    seg_classes=[],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
