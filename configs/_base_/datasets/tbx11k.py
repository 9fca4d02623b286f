# TBX11K: cls, loc. Converted from the official download by
#   python data_converters/tbx11k.py --root data/cxr/TBX11K
# (docs/datasets.md). Splits: official val = test (test labels are not public); val = 10% of the official train (seeded).
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
tbx11k_data = dict(
    name='tbx11k',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='TBX11K/',  # the official folder, under the config's data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Healthy', 'Sick but non-TB', 'TB'],
    det_classes=['ActiveTuberculosis', 'ObsoletePulmonaryTuberculosis', 'PulmonaryTuberculosis'],
    seg_classes=[],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
