# VinDr-RibCXR: seg. Converted from the official download by
#   python data_converters/vindr_ribcxr.py --root data/cxr/VinDr-RibCXR
# (docs/datasets.md). Splits: official val = test; val = 10% of the official train (seeded).
# R ribs are the patient's right (the image's left)
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
vindr_ribcxr_data = dict(
    name='vindr_ribcxr',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='VinDr-RibCXR/',  # the official folder, under the config's data root
    tasks=['seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=[],
    det_classes=[],
    seg_classes=['R1', 'R2', 'R3', 'R4', 'R5', 'R6', 'R7', 'R8', 'R9', 'R10',
                 'L1', 'L2', 'L3', 'L4', 'L5', 'L6', 'L7', 'L8', 'L9', 'L10'],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
