# SIIM-ACR Pneumothorax Segmentation: cls, loc, seg. Converted from the official download by
#   python data_converters/siim_acr.py --root data/cxr/siim-acr-pneumothorax
# (docs/datasets.md). Splits: none public: 70/10/20% of the patients (seeded, DICOM Patient ID).
# boxes = connected components of the pneumothorax masks
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
siim_data = dict(
    name='siim',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='siim-acr-pneumothorax/',  # the official folder, under the config's data root
    tasks=['cls', 'loc', 'seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Pneumothorax'],
    det_classes=['Pneumothorax'],
    seg_classes=['Pneumothorax'],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
