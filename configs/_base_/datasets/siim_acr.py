# SIIM-ACR Pneumothorax (cls, loc, seg), converted from the official download by
#   python data_converters/siim_acr.py --root data/cxr/siim-acr-pneumothorax
# Splits: the test labels are not public; 70 / 10 / 20% of the patients (DICOM Patient ID).
# Boxes are the connected components of the pneumothorax masks.
# A config builds its datasets from `siim_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
siim_data = dict(
    name='siim',  # metainfo 'dataset': names its heads, losses and metrics
    folder='siim-acr-pneumothorax/',  # official folder name, under the data root
    tasks=['cls', 'loc', 'seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Pneumothorax'],
    det_classes=['Pneumothorax'],
    seg_classes=['Pneumothorax'],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
