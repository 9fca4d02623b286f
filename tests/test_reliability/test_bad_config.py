"""Bad configs: a mistyped top-level key, an argument a module does not take (at the top,
built by the Runner, and nested, built by fxmm's registries), each named with its close
match. A missing or mis-scoped ``type`` is covered by tests/test_registry/test_registry_hint.py.
"""
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config

from fxmm.engine.config_checks import check_config
from fxmm.registry import DATA_SAMPLERS, DATASETS
from tool_scripts import load_tool

DEMO = 'configs/foundation_x_demo.py'
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def demo_cfg():
    return Config.fromfile(osp.join(ROOT, DEMO))


def check_message(cfg) -> str:
    with pytest.raises(ValueError) as err:
        check_config(cfg)
    return str(err.value)


@pytest.mark.parametrize('config', [DEMO, 'configs/foundation_x.py'])
def test_shipped_configs_pass(config):
    check_config(Config.fromfile(osp.join(ROOT, config)))


def test_top_level_typo_names_the_runner_key(demo_cfg):
    cfg = demo_cfg.copy()
    cfg.trian_cfg = cfg.pop('train_cfg')
    cfg.param_schedular = cfg.pop('param_scheduler')
    msg = check_message(cfg)
    assert "config key 'trian_cfg' is not read by the Runner: did you mean 'train_cfg'?" in msg
    assert "'param_schedular' is not read by the Runner: did you mean 'param_scheduler'?" in msg
    assert DEMO in msg  # names the file


def test_unknown_arguments_of_runner_built_modules(demo_cfg):
    cfg = Config(demo_cfg.to_dict())  # a deep copy
    cfg.train_dataloader.sampler.bacth_size = 4
    cfg.train_dataloader.num_worker = 2
    cfg.train_cfg.max_visit = 3
    cfg.default_hooks.logger.intervall = 5
    cfg.custom_hooks[1].lock_fractoin = 0.2
    cfg.val_evaluator.foo_bar_baz = 1
    msg = check_message(cfg)
    for line in [
            "train_dataloader.sampler: MultiTaskSampler does not take 'bacth_size': "
            "did you mean 'batch_size'?",
            "train_dataloader: DataLoader does not take 'num_worker': did you mean "
            "'num_workers'?",
            "train_cfg: CyclicTrainLoop does not take 'max_visit': did you mean 'max_visits'?",
            "default_hooks.logger: LoggerHook does not take 'intervall': did you mean "
            "'interval'?",
            "custom_hooks[1]: LockReleaseHook does not take 'lock_fractoin': did you mean "
            "'lock_fraction'?",
            "val_evaluator[0]: MultiTaskMetric does not take 'foo_bar_baz': MultiTaskMetric "
            "takes [",
    ]:
        assert line in msg


def test_registry_build_hints_the_argument():
    """The builds modules do themselves (not seen by the config check) get the hint too."""
    # (Python rejects the argument before the sampler looks at its dataset)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'bacth_size' hint: "
                                        r"did you mean 'batch_size'\?"):
        DATA_SAMPLERS.build(dict(type='MultiTaskSampler', bacth_size=2),
                            default_args=dict(dataset=None))
    # nested: MultiTaskDataset builds its CXRDataset through fxmm's DATASETS
    with pytest.raises(TypeError, match=r"'max_bad_image' hint: did you mean "
                                        r"'max_bad_images'\?"):
        DATASETS.build(dict(type='MultiTaskDataset', pairs=[dict(
            task='cls', dataset=dict(type='CXRDataset', ann_file='x.json', max_bad_image=3))]))


def test_other_type_errors_are_left_alone():
    with pytest.raises(TypeError) as err:
        DATA_SAMPLERS.build(dict(type='MultiTaskSampler', batch_size=2, dataset=[1, 2]))
    assert 'MultiTaskSampler needs a MultiTaskDataset' in str(err.value)
    assert 'hint' not in str(err.value)


def test_train_tool_stops_before_building_the_runner(monkeypatch, tmp_path):
    train = load_tool('train')
    monkeypatch.setattr(sys, 'argv', [
        'train.py', osp.join(ROOT, DEMO), '--work-dir', str(tmp_path),
        '--cfg-options', 'optim_wraper.clip_grad=None'])
    with pytest.raises(ValueError, match=r"'optim_wraper' is not read by the Runner: did you "
                                         r"mean 'optim_wrapper'\?"):
        train.main()
    assert not any(tmp_path.iterdir())  # nothing was built or written


def test_test_tool_stops_before_building_the_runner(monkeypatch, tmp_path):
    test_tool = load_tool('test')
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict={}), checkpoint)
    monkeypatch.setattr(sys, 'argv', [
        'test.py', osp.join(ROOT, DEMO), str(checkpoint), '--work-dir', str(tmp_path),
        '--cfg-options', 'test_dataloader.sampler.mdoe=sequential'])
    with pytest.raises(ValueError, match=r"MultiTaskSampler does not take 'mdoe': did you "
                                         r"mean 'mode'\?"):
        test_tool.main()
