# JSRT + SCR masks (seg), converted from the official download by
#   python data_converters/jsrt.py --root data/cxr/JSRT
# Splits: SCR fold2 is the test split; val = 10% of fold1. The images are averaged down to
# the 1024 x 1024 grid of the masks (a 16-bit PNG copy under png/).
# A config builds its datasets from `jsrt_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
jsrt_data = dict(
    name='jsrt',  # metainfo 'dataset': names its heads, losses and metrics
    folder='JSRT/',  # official folder name, under the data root
    tasks=['seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=[],
    det_classes=[],
    seg_classes=['heart', 'left_lung', 'right_lung', 'left_clavicle', 'right_clavicle'],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
