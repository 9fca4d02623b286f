# Shenzhen: cls. Converted from the official download by
#   python data_converters/shenzhen.py --root data/cxr/ChinaSet_AllFiles
# (docs/datasets.md). Splits: none official: 70/10/20% of the patients (seeded).
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
shenzhen_data = dict(
    name='shenzhen',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='ChinaSet_AllFiles/',  # the official folder, under the config's data root
    tasks=['cls'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['TB'],
    det_classes=[],
    seg_classes=[],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
