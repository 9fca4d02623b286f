# CANDID-PTX (cls, loc, seg), converted from the official download by
#   python data_converters/candid_ptx.py --root data/cxr/CANDID-PTX
# Splits: none official; 70 / 10 / 20% of the patients (DICOM Patient ID).
# Boxes are the connected components of the pneumothorax masks.
# A config builds its datasets from `candid_ptx_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
candid_ptx_data = dict(
    name='candid_ptx',  # metainfo 'dataset': names its heads, losses and metrics
    folder='CANDID-PTX/',  # official folder name, under the data root
    tasks=['cls', 'loc', 'seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Pneumothorax'],
    det_classes=['Pneumothorax'],
    seg_classes=['Pneumothorax'],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
