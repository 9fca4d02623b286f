# VinDr-CXR organs (CheXmask lungs and heart) (loc, seg), converted from the official download by
#   python data_converters/vindr_cxr_organs.py --root data/cxr/vindr-cxr \
#       --chexmask-csv data/cxr/CheXmask/OriginalResolution/VinDr-CXR.csv
# Written beside the VinDr-CXR findings as annotations/organs_<split>.json, with the same
# splits (official test; the same 10% of the train images as val).
# A config builds its datasets from `vindr_cxr_organs_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
vindr_cxr_organs_data = dict(
    name='vindr_cxr_organs',  # metainfo 'dataset': names its heads, losses and metrics
    folder='vindr-cxr/',  # official folder name, under the data root
    tasks=['loc', 'seg'],
    ann_file=dict(train='annotations/organs_train.json', val='annotations/organs_val.json',
                  test='annotations/organs_test.json'),
    cls_classes=[],
    det_classes=['left_lung', 'right_lung', 'heart'],
    seg_classes=['left_lung', 'right_lung', 'heart'],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
