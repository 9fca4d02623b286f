# Shenzhen (cls), converted from the official download by
#   python data_converters/shenzhen.py --root data/cxr/ChinaSet_AllFiles
# Splits: none official; 70 / 10 / 20% of the patients.
# A config builds its datasets from `shenzhen_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
shenzhen_data = dict(
    name='shenzhen',  # metainfo 'dataset': names its heads, losses and metrics
    folder='ChinaSet_AllFiles/',  # official folder name, under the data root
    tasks=['cls'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['TB'],
    det_classes=[],
    seg_classes=[],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
