# NODE21: cls, loc. Converted from the official download by
#   python data_converters/node21.py --root data/cxr/node21
# (docs/datasets.md). Splits: none official: 70/10/20% of the images (seeded).
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
node21_data = dict(
    name='node21',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='node21/',  # the official folder, under the config's data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Nodule'],
    det_classes=['Nodule'],
    seg_classes=[],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
