"""The dataset configs agree with their converters; the Foundation X data config builds
its 20 pairs under one data root and feeds a converted dataset through its pipelines."""
import os.path as osp

import pytest
from mmengine.config import Config

from data_converters.convert_all import DATASETS
from data_converters.siim_acr import SIIMACRConverter
from fixtures import write_siim
from fxmm.registry import DATASETS as DATASET_REGISTRY

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                   'configs', '_base_', 'datasets')


@pytest.mark.parametrize('name', list(DATASETS))
def test_dataset_config_matches_converter(name):
    folders, converter = DATASETS[name]
    module = converter.__module__.rsplit('.', 1)[-1]
    data = Config.fromfile(osp.join(CONFIGS, f'{module}.py'))[f'{converter.dataset}_data']
    assert data['name'] == converter.dataset
    assert data['folder'].rstrip('/') in folders
    assert data['tasks'] == list(converter.tasks)
    for key in ('cls_classes', 'det_classes', 'seg_classes'):
        assert data[key] == list(getattr(converter, key)), key
    assert data['ann_file'] == {s: f'annotations/{converter.ann_prefix}{s}.json'
                                for s in ('train', 'val', 'test')}


def test_foundation_x_data_pairs_and_pipeline(tmp_path, monkeypatch):
    data_root = tmp_path / 'cxr'
    root = str(data_root / 'siim-acr-pneumothorax')
    write_siim(root)
    SIIMACRConverter(root=root).run()
    monkeypatch.setenv('FXMM_DATA_ROOT', str(data_root))
    cfg = Config.fromfile(osp.join(CONFIGS, 'foundation_x_data.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        pairs = cfg[loader].dataset.pairs
        tasks = [p.task for p in pairs]
        assert (len(pairs), tasks.count('cls'), tasks.count('loc'), tasks.count('seg')) == \
            (20, 11, 6, 3)
        assert all(p.dataset.data_root.startswith(str(data_root)) for p in pairs)
    assert set(cfg.fx_datasets) == {'chexpert', 'chestxray14', 'vindr_cxr', 'shenzhen',
                                    'mimic_cxr', 'tbx11k', 'node21', 'candid_ptx',
                                    'rsna_pneumonia', 'chestx_det', 'siim'}
    assert cfg.fx_datasets.siim.seg_classes == ['Pneumothorax']
    seg_pair = next(p for p in cfg.train_dataloader.dataset.pairs
                    if p.task == 'seg' and p.dataset.data_root.endswith('siim-acr-pneumothorax/'))
    split = next(s for s in ('train', 'val', 'test')
                 if osp.exists(osp.join(root, 'annotations', f'{s}.json')))
    dataset = DATASET_REGISTRY.build(dict(seg_pair.dataset, ann_file=f'annotations/{split}.json'))
    packed = dataset[0]
    assert tuple(packed['inputs'].shape) == (1, 224, 224)
    assert tuple(packed['data_samples'].gt_seg_masks.data.shape) == (1, 224, 224)


def test_every_missing_dataset_is_named_in_one_error(tmp_path, monkeypatch):
    """Training the 11 datasets with only SIIM-ACR converted names the other ten datasets'
    annotation files (each with its pairs) in one error, not the first one alone."""
    data_root = tmp_path / 'cxr'
    root = str(data_root / 'siim-acr-pneumothorax')
    write_siim(root)
    SIIMACRConverter(root=root, val_fraction=0.0, test_fraction=0.0).run()
    monkeypatch.setenv('FXMM_DATA_ROOT', str(data_root))
    cfg = Config.fromfile(osp.join(CONFIGS, 'foundation_x_data.py'))
    with pytest.raises(FileNotFoundError) as err:
        DATASET_REGISTRY.build(cfg.train_dataloader.dataset)
    message = str(err.value)
    assert '10 annotation file(s) not found, needed by 17 of the 20 pairs' in message
    folders = {p.dataset.data_root for p in cfg.train_dataloader.dataset.pairs}
    for folder in folders:
        assert (folder in message) == (not folder.endswith('/siim-acr-pneumothorax/')), folder
    assert 'pairs 9 (cls), 10 (loc), 11 (seg): annotation file' in message  # CANDID-PTX's
