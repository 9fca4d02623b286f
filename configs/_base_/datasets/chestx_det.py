# ChestX-Det: cls, loc, seg. Converted from the official download by
#   python data_converters/chestx_det.py --root data/cxr/ChestX-Det
# (docs/datasets.md). Splits: official test; val = 10% of the official train (seeded).
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
chestx_det_data = dict(
    name='chestx_det',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='ChestX-Det/',  # the official folder, under the config's data root
    tasks=['cls', 'loc', 'seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Atelectasis', 'Calcification', 'Cardiomegaly', 'Consolidation', 'Diffuse Nodule',
                 'Effusion', 'Emphysema', 'Fibrosis', 'Fracture', 'Mass', 'Nodule',
                 'Pleural Thickening', 'Pneumothorax'],
    det_classes=[],
    seg_classes=[],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
