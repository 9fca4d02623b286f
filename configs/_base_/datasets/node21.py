# NODE21 (cls, loc), converted from the official download by
#   python data_converters/node21.py --root data/cxr/node21
# Splits: none official; 70 / 10 / 20% of the images.
# A config builds its datasets from `node21_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
node21_data = dict(
    name='node21',  # metainfo 'dataset': names its heads, losses and metrics
    folder='node21/',  # official folder name, under the data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Nodule'],
    det_classes=['Nodule'],
    seg_classes=[],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
