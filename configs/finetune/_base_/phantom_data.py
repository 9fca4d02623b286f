# The fine-tuning targets of the phantom twins (configs/finetune/phantom/): two datasets of
# the synthetic chest phantoms (data_converters/synthetic.py) in the shape of the real
# datasets' configs (configs/_base_/datasets/jsrt.py), under their own names, so that a
# model pretrained on the phantoms (configs/foundation_x_demo.py) gets new heads for them as
# it does for a real downstream dataset. The phantoms have heart and lungs masks but no
# clavicles: the few-shot twin fine-tunes on the organs.
#   make phantoms   (writes data/phantoms)
phantom_root = 'data/phantoms/'  # data_converters/synthetic.py --out
phantom_img_size = 128           # the size the demo model was trained at

phantom_organs_data = dict(
    name='phantom_organs',  # a new dataset for the demo model (it knows 'phantom_seg')
    folder='phantom_seg/',
    tasks=['cls', 'seg'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['cardiomegaly'],
    det_classes=[],
    seg_classes=['right_lung', 'left_lung', 'heart'],
    train_kwargs=dict(),
    test_kwargs=dict(),
)
phantom_lesions_data = dict(
    name='phantom_lesions',  # a new dataset for the demo model (it knows 'phantom_loc')
    folder='phantom_loc/',
    tasks=['cls', 'loc'],
    ann_file=dict(train='annotations/train.json', val='annotations/val.json',
                  test='annotations/test.json'),
    cls_classes=['nodule', 'mass'],
    det_classes=['nodule', 'mass'],
    seg_classes=[],
    train_kwargs=dict(),
    test_kwargs=dict(),
)
