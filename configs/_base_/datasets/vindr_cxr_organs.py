# VinDr-CXR organs (CheXmask lungs and heart): loc, seg. Converted from the official download by
#   python data_converters/vindr_cxr_organs.py --root data/cxr/vindr-cxr \
#       --chexmask-csv data/cxr/CheXmask/OriginalResolution/VinDr-CXR.csv
# (docs/datasets.md). Splits: as VinDr-CXR: official test; val = the same 10% of the train images.
# written beside the VinDr-CXR findings as annotations/organs_<split>.json
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
vindr_cxr_organs_data = dict(
    name='vindr_cxr_organs',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='vindr-cxr/',  # the official folder, under the config's data root
    tasks=['loc', 'seg'],
    ann_file=dict(train='annotations/organs_train.json', val='annotations/organs_val.json',
                  test='annotations/organs_test.json'),
    cls_classes=[],
    det_classes=['left_lung', 'right_lung', 'heart'],
    seg_classes=['left_lung', 'right_lung', 'heart'],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
