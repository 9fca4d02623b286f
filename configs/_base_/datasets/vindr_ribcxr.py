# VinDr-RibCXR (seg), converted from the official download by
#   python data_converters/vindr_ribcxr.py --root data/cxr/VinDr-RibCXR
# Splits: the official val is the test split; val = 10% of the official train.
# R ribs are the patient's right (the image's left).
# A config builds its datasets from `vindr_ribcxr_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
vindr_ribcxr_data = dict(
    name='vindr_ribcxr',  # metainfo 'dataset': names its heads, losses and metrics
    folder='VinDr-RibCXR/',  # official folder name, under the data root
    tasks=['seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=[],
    det_classes=[],
    seg_classes=['R1', 'R2', 'R3', 'R4', 'R5', 'R6', 'R7', 'R8', 'R9', 'R10', 'L1', 'L2', 'L3',
                 'L4', 'L5', 'L6', 'L7', 'L8', 'L9', 'L10'],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
