"""Tests of MultiTaskDataset: pair names, global indexing, metainfo stamping, bad input."""
import pytest
import torch
from mmengine.dataset import BaseDataset

from fxmm.datasets.multi_task_dataset import MultiTaskDataset
from fxmm.registry import DATASETS
from fxmm.structures import CXRDataSample


def pack(results: dict) -> dict:
    """Pack a toy sample as PackCXRInputs does: ``inputs`` + a data sample."""
    return dict(inputs=torch.tensor([float(results['value'])]),
                data_samples=CXRDataSample(metainfo=dict(sample_idx=results['sample_idx'])))


@DATASETS.register_module(force=True)
class PlainToyDatasetMTD(BaseDataset):
    """``num_samples`` samples with values ``start, start + 1, ...``; no ``task`` argument."""

    def __init__(self, num_samples: int, name='toy', start=0, pipeline=(pack, ),
                 lazy_init=False, **kwargs):
        self.num_samples, self.start, self.name = num_samples, start, name
        super().__init__(pipeline=list(pipeline), serialize_data=False, lazy_init=lazy_init,
                         **kwargs)

    def load_data_list(self):
        # the metainfo an annotation file would carry
        self._metainfo.update(dataset=self.name, cls_classes=['a', 'b'], det_classes=['box'],
                              seg_classes=['lung'])
        return [dict(value=self.start + i) for i in range(self.num_samples)]


@DATASETS.register_module(force=True)
class TaskToyDatasetMTD(PlainToyDatasetMTD):
    """The toy dataset taking a ``task`` argument, as CXRDataset does."""

    def __init__(self, num_samples: int, task=None, lazy_init=False, **kwargs):
        self.task = task
        super().__init__(num_samples, lazy_init=lazy_init, **kwargs)


def toy(num_samples, name, start=0, typ='TaskToyDatasetMTD', **kwargs):
    return dict(type=typ, num_samples=num_samples, name=name, start=start, **kwargs)


def three_pairs(**kwargs):
    return MultiTaskDataset([
        dict(dataset=toy(3, 'siim', start=100), task='seg'),
        dict(dataset=toy(4, 'siim', start=200), task='cls'),
        dict(dataset=toy(2, 'nih', start=300, typ='PlainToyDatasetMTD'), task='cls'),
    ], **kwargs)


def test_pairs_are_named_sized_and_indexed():
    dataset = three_pairs()
    assert dataset.pair_names == ['siim.seg', 'siim.cls', 'nih.cls']
    assert dataset.tasks == ['seg', 'cls', 'cls']
    assert dataset.cumulative_sizes == [3, 7, 9]
    assert len(dataset) == 9
    # the task reaches the dataset class that takes one
    assert [dataset.datasets[0].task, dataset.datasets[1].task] == ['seg', 'cls']
    assert not hasattr(dataset.datasets[2], 'task')
    assert [dataset.pair_index(i) for i in (0, 2, 3, 6, 7, 8, -1, -9)] == [
        (0, 0), (0, 2), (1, 0), (1, 3), (2, 0), (2, 1), (2, 1), (0, 0)]
    for bad in (9, -10):
        with pytest.raises(IndexError, match='out of range'):
            dataset.pair_index(bad)


def test_getitem_delegates_and_stamps_global_metainfo():
    dataset = three_pairs()
    values = [float(dataset[i]['inputs']) for i in range(len(dataset))]
    assert values == [100, 101, 102, 200, 201, 202, 203, 300, 301]
    item = dataset[5]
    assert item['data_samples'].metainfo == dict(sample_idx=5, dataset='siim', task='cls')
    assert dataset[-1]['data_samples'].metainfo == dict(sample_idx=8, dataset='nih',
                                                        task='cls')


def test_metainfo_lists_class_names_per_pair():
    assert three_pairs().metainfo == dict(
        pair_names=['siim.seg', 'siim.cls', 'nih.cls'], tasks=['seg', 'cls', 'cls'],
        classes={'siim.seg': ['lung'], 'siim.cls': ['a', 'b'], 'nih.cls': ['a', 'b']},
        datasets={name: dict(cls_classes=['a', 'b'], det_classes=['box'],
                             seg_classes=['lung'], lr_pairs=[])
                  for name in ('siim', 'nih')})


def test_name_weight_instance_and_registry_build():
    built = PlainToyDatasetMTD(2, name='nih', start=5)
    dataset = DATASETS.build(dict(type='MultiTaskDataset', pairs=[
        dict(dataset=toy(3, 'vindr'), task='loc', name='vindr_organ', weight=2.5),
        dict(dataset=built, task='cls'),
    ]))
    assert isinstance(dataset, MultiTaskDataset)
    assert dataset.pair_names == ['vindr_organ.loc', 'nih.cls']
    assert dataset.weights == [2.5, 1.0]
    assert dataset.datasets[1] is built
    assert dataset[0]['data_samples'].dataset == 'vindr_organ'
    assert float(dataset[4]['inputs']) == 6


def test_lazy_init_defers_reading_the_sub_datasets():
    dataset = three_pairs(lazy_init=True)
    assert [d._fully_initialized for d in dataset.datasets] == [False, False, False]
    assert not dataset._fully_initialized
    assert len(dataset) == 9
    assert [d._fully_initialized for d in dataset.datasets] == [True, True, True]
    assert [d._fully_initialized for d in three_pairs().datasets] == [True, True, True]


@pytest.mark.parametrize('pairs, error, match', [
    ([], ValueError, 'at least one'),
    ([dict(dataset=toy(2, 'a'), task='det')], ValueError, "unknown task 'det'"),
    ([dict(dataset=toy(2, 'a'), task='cls', pipline=[])], ValueError,
     r"unknown key\(s\) \['pipline'\]"),
    ([dict(dataset=toy(2, 'a'))], ValueError, 'needs `dataset` and `task`'),
    ([dict(dataset=toy(2, 'a'), task='cls', weight=-1)], ValueError, 'weight'),
    ([dict(dataset=toy(2, 'a', task='seg'), task='cls')], ValueError, "task='seg'"),
    ([dict(dataset=toy(2, 'a'), task='cls'), dict(dataset=toy(3, 'a'), task='cls')],
     ValueError, r"duplicate pair name\(s\) \['a.cls'\]"),
    ([dict(dataset=toy(2, 'a'), task='cls'),
      dict(dataset=toy(0, 'b', ann_file='b/train.json'), task='seg')],
     ValueError, r"pair 'b.seg' is empty \(ann_file='b/train.json'\)"),
    ([dict(dataset=toy(2, ''), task='cls')], ValueError, "set the pair's `name`"),
])
def test_bad_pairs_get_clear_errors(pairs, error, match):
    with pytest.raises(error, match=match):
        MultiTaskDataset(pairs)


def test_pipeline_output_is_checked():
    unpacked = MultiTaskDataset([dict(dataset=toy(2, 'a', pipeline=[]), task='cls')])
    with pytest.raises(TypeError, match="pair 'a.cls': the pipeline must end with a packing"):
        unpacked[0]

    def pack_loc(results):
        packed = pack(results)
        packed['data_samples'].set_metainfo(dict(task='loc'))
        return packed

    wrong_task = MultiTaskDataset([dict(dataset=toy(2, 'a', pipeline=[pack_loc]), task='cls')])
    with pytest.raises(ValueError, match="pair 'a.cls': its pipeline packed a sample of "
                                         "task 'loc'"):
        wrong_task[1]
