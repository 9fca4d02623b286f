# ChestX-Det (cls, loc, seg), converted from the official download by
#   python data_converters/chestx_det.py --root data/cxr/ChestX-Det
# Splits: the official test; val = 10% of the official train.
# A config builds its datasets from `chestx_det_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
chestx_det_data = dict(
    name='chestx_det',  # metainfo 'dataset': names its heads, losses and metrics
    folder='ChestX-Det/',  # official folder name, under the data root
    tasks=['cls', 'loc', 'seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Atelectasis', 'Calcification', 'Cardiomegaly', 'Consolidation', 'Diffuse Nodule',
                 'Effusion', 'Emphysema', 'Fibrosis', 'Fracture', 'Mass', 'Nodule',
                 'Pleural Thickening', 'Pneumothorax'],
    det_classes=['Atelectasis', 'Calcification', 'Cardiomegaly', 'Consolidation', 'Diffuse Nodule',
                 'Effusion', 'Emphysema', 'Fibrosis', 'Fracture', 'Mass', 'Nodule',
                 'Pleural Thickening', 'Pneumothorax'],
    seg_classes=['Atelectasis', 'Calcification', 'Cardiomegaly', 'Consolidation', 'Diffuse Nodule',
                 'Effusion', 'Emphysema', 'Fibrosis', 'Fracture', 'Mass', 'Nodule',
                 'Pleural Thickening', 'Pneumothorax'],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
