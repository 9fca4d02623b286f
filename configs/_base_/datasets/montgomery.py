# Montgomery County (cls, seg), converted from the official download by
#   python data_converters/montgomery.py --root data/cxr/MontgomerySet
# Splits: none official; 70 / 10 / 20% of the patients.
# A config builds its datasets from `montgomery_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
montgomery_data = dict(
    name='montgomery',  # metainfo 'dataset': names its heads, losses and metrics
    folder='MontgomerySet/',  # official folder name, under the data root
    tasks=['cls', 'seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['TB'],
    det_classes=[],
    seg_classes=['left_lung', 'right_lung'],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
