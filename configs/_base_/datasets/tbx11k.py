# TBX11K (cls, loc), converted from the official download by
#   python data_converters/tbx11k.py --root data/cxr/TBX11K
# Splits: the test labels are not public; the official val is the test split, val = 10% of
# the official train.
# A config builds its datasets from `tbx11k_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
tbx11k_data = dict(
    name='tbx11k',  # metainfo 'dataset': names its heads, losses and metrics
    folder='TBX11K/',  # official folder name, under the data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Healthy', 'Sick but non-TB', 'TB'],
    det_classes=['ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis', 'PulmonaryTuberculosis'],
    seg_classes=[],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
