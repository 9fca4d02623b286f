# RSNA Pneumonia Detection Challenge: cls, loc. Converted from the official download by
#   python data_converters/rsna_pneumonia.py --root data/cxr/rsna-pneumonia-detection-challenge
# (docs/datasets.md). Splits: none public: 70/10/20% of the patients (seeded).
# `configs/_base_/datasets/foundation_x_data.py` shows how a config builds its datasets from it.
rsna_pneumonia_data = dict(
    name='rsna_pneumonia',  # metainfo 'dataset': the key of its heads, losses and metrics
    folder='rsna-pneumonia-detection-challenge/',  # the official folder, under the config's data root
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['Normal', 'No Lung Opacity / Not Normal', 'Lung Opacity'],
    det_classes=['Lung Opacity'],
    seg_classes=[],
    train_kwargs=dict(),  # extra CXRDataset arguments, train split
    test_kwargs=dict(),  # extra CXRDataset arguments, val/test splits
)
