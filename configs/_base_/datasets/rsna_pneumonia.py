# RSNA Pneumonia (cls, loc), converted from the official download by
#   python data_converters/rsna_pneumonia.py --root data/cxr/rsna-pneumonia-detection-challenge
# Splits: the test labels are not public; 70 / 10 / 20% of the patients.
# A config builds its datasets from `rsna_pneumonia_data` under its own data root, as
# configs/_base_/datasets/foundation_x_data.py does (docs/datasets.md).
rsna_pneumonia_data = dict(
    name='rsna_pneumonia',  # metainfo 'dataset': names its heads, losses and metrics
    folder='rsna-pneumonia-detection-challenge/',  # official folder name, under the data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Normal', 'No Lung Opacity / Not Normal', 'Lung Opacity'],
    det_classes=['Lung Opacity'],
    seg_classes=[],
    # more CXRDataset arguments for the train split, and for the val and test splits
    train_kwargs=dict(),
    test_kwargs=dict(),
)
