"""PairLogProcessor keeps the current pair's losses and adds the visit number."""
from types import SimpleNamespace

from mmengine.logging import MessageHub

from fxmm.datasets.samplers import VisitInfo
from fxmm.engine import PairLogProcessor


def _runner(message_hub, visit):
    dataset = SimpleNamespace(pair_names=['a.cls', 'b.seg'])
    loop = SimpleNamespace(current_visit=visit, sampler=SimpleNamespace(dataset=dataset))
    return SimpleNamespace(message_hub=message_hub, train_loop=loop)


def test_train_log_keeps_current_pair_and_adds_visit():
    hub = MessageHub.get_instance('test_pair_log_processor')
    hub.update_scalar('train/a.cls.loss_cls', 0.7)
    hub.update_scalar('train/b.seg.loss_dice', 0.4)
    hub.update_scalar('train/loss', 0.4)
    hub.update_scalar('val/a.cls/AUC', 0.9)
    visit = VisitInfo(visit=3, pair_idx=1, pair_name='b.seg', task='seg', iter_in_visit=0,
                      visit_len=4)
    processor = PairLogProcessor(by_epoch=False)
    tag = processor._collect_scalars([], _runner(hub, visit), 'train')
    assert tag == {'b.seg.loss_dice': 0.4, 'loss': 0.4, 'visit': 3}
    # validation logs are untouched
    val_tag = processor._collect_scalars([], _runner(hub, visit), 'val')
    assert val_tag == {'a.cls/AUC': 0.9}
