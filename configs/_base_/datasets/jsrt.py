# JSRT + SCR masks: seg. Converted from the official download by
#   python data_converters/jsrt.py --root data/cxr/JSRT
# (docs/datasets.md). Splits: SCR fold2 = test; val = 10% of fold1 (seeded).
# images averaged down to the 1024 x 1024 grid of the SCR masks (a 16-bit PNG copy)
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
jsrt_data = dict(
    name='jsrt',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='JSRT/',  # the official folder, under the config's data root
    tasks=['seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=[],
    det_classes=[],
    seg_classes=['heart', 'left_lung', 'right_lung', 'left_clavicle', 'right_clavicle'],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
