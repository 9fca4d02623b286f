"""Memory and speed options: ``--amp`` (bf16 autocast on CPU) and gradient checkpointing of
the Swin stages (``with_cp``)."""
import os.path as osp
import socket
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmpretrain.models.backbones.swin_transformer import SwinBlock
from torch import nn

import fxmm.engine.optim_wrappers as optim_wrappers
from fxmm.models.backbones import NonReentrantSwinBlock, use_non_reentrant_checkpoint
from fxmm.registry import MODELS, OPTIM_WRAPPERS
from fxmm.testing import demo_cxr_inputs, get_tiny_model_cfg
from tool_scripts import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU fallback')


def build_model(with_cp=False, drop_path_rate=0.):
    cfg = get_tiny_model_cfg()
    cfg.backbone.update(with_cp=with_cp, drop_path_rate=drop_path_rate)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MODELS.build(cfg)
        model.init_weights()
    return model


def seg_batch(model):
    data = demo_cxr_inputs(2, 64, 'seg', 'jsrt', num_seg=3, seed=1)
    return model.data_preprocessor(data, training=True)


@cpu_only
def test_amp_training_step_on_cpu_is_bf16(monkeypatch):
    logged = []
    monkeypatch.setattr(optim_wrappers, 'print_log', lambda msg, **kwargs: logged.append(msg))
    model = build_model()
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='AnyDeviceAmpOptimWrapper',
        optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3)))
    assert wrapper.cast_dtype is torch.bfloat16 and not wrapper.loss_scaler.is_enabled()
    assert logged == ['AMP on CPU: bfloat16 autocast, no loss scaling']

    data = demo_cxr_inputs(2, 64, 'seg', 'jsrt', num_seg=3, seed=1)
    with torch.no_grad():
        fp32_loss = sum(model.loss(**seg_batch(model)).values())
    linear_dtypes = []
    first_linear = next(m for m in model.backbone.modules() if isinstance(m, nn.Linear))
    first_linear.register_forward_hook(lambda m, i, out: linear_dtypes.append(out.dtype))
    weight = first_linear.weight.detach().clone()

    log_vars = model.train_step(data, wrapper)
    assert linear_dtypes == [torch.bfloat16]  # the forward ran under bf16 autocast
    amp_loss = float(log_vars['loss'])
    assert abs(amp_loss - float(fp32_loss)) < 0.02 * abs(float(fp32_loss))
    assert first_linear.weight.dtype is torch.float32  # master weights stay fp32
    assert not torch.equal(first_linear.weight, weight)  # and were updated


@cpu_only
def test_amp_on_cpu_replaces_fp16(monkeypatch):
    logged = []
    monkeypatch.setattr(optim_wrappers, 'print_log', lambda msg, **kwargs: logged.append(msg))
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='SafeAmpOptimWrapper', dtype='float16',
        optimizer=torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)))
    assert wrapper.cast_dtype is torch.bfloat16
    assert "dtype='float16' is replaced" in logged[0]


@cpu_only
def test_cpu_amp_checkpoint_resumes_with_loss_scaling():
    """A CPU run saves an empty scaler state; a GPU run (enabled scaler) must load it."""
    params = list(nn.Linear(2, 2).parameters())
    cpu_run = OPTIM_WRAPPERS.build(dict(type='AnyDeviceAmpOptimWrapper',
                                        optimizer=torch.optim.SGD(params, lr=0.1)))
    saved = cpu_run.state_dict()
    assert saved['loss_scaler'] == {}
    gpu_run = OPTIM_WRAPPERS.build(dict(type='AnyDeviceAmpOptimWrapper',
                                        optimizer=torch.optim.SGD(params, lr=0.1)))
    gpu_run.loss_scaler = torch.amp.GradScaler('cpu', init_scale=1024.)  # enabled, as on GPU
    gpu_run.load_state_dict(saved)
    assert gpu_run.loss_scaler.get_scale() == 1024.
    assert gpu_run.optimizer.param_groups[0]['lr'] == 0.1


@pytest.mark.parametrize('config_type, amp_type', [
    ('OptimWrapper', 'AnyDeviceAmpOptimWrapper'),
    ('SafeOptimWrapper', 'SafeAmpOptimWrapper'),
    ('SafeAmpOptimWrapper', 'SafeAmpOptimWrapper'),  # already AMP: unchanged
])
def test_train_tool_amp_flag(monkeypatch, config_type, amp_type):
    train = load_tool('train')
    monkeypatch.setattr(sys, 'argv', [
        'train.py', osp.join(ROOT, 'configs/foundation_x_demo.py'), '--amp',
        '--cfg-options', f'optim_wrapper.type={config_type}'])
    cfg = train.build_cfg(train.parse_args())
    assert cfg.optim_wrapper.type == amp_type


def test_train_tool_amp_flag_rejects_other_wrappers(monkeypatch):
    train = load_tool('train')
    monkeypatch.setattr(sys, 'argv', [
        'train.py', osp.join(ROOT, 'configs/foundation_x_demo.py'), '--amp',
        '--cfg-options', 'optim_wrapper.type=ApexOptimWrapper'])
    with pytest.raises(ValueError, match=r"--amp needs optim_wrapper.type to be one of "
                                         r"\['OptimWrapper', 'SafeOptimWrapper'\].*"
                                         r"got 'ApexOptimWrapper'"):
        train.build_cfg(train.parse_args())


def test_demo_config_has_the_with_cp_flag():
    cfg = Config.fromfile(osp.join(ROOT, 'configs/foundation_x_demo.py'))
    assert cfg.with_cp is False
    assert cfg.model.model.backbone.with_cp is False


def test_with_cp_gives_the_same_loss_and_grads(monkeypatch):
    """Checkpointed Swin blocks recompute their forward in backward (restoring the RNG, so
    drop-path draws the same paths): same loss and gradients as without."""
    calls = []
    checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, 'checkpoint',
                        lambda *a, **kw: calls.append(1) or checkpoint(*a, **kw))
    results = []
    for with_cp in (False, True):
        model = build_model(with_cp=with_cp, drop_path_rate=0.2)
        model.train()
        with torch.random.fork_rng():
            torch.manual_seed(1)
            loss = sum(model.loss(**seg_batch(model)).values())
            loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads))
        assert len(calls) == (8 if with_cp else 0)  # 8 Swin blocks checkpointed
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 100
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6,
                                   msg=name)


def _with_cp_ddp_worker(rank, port, results):
    """One SGD step (lr 1) of the DDP-wrapped tiny model without and with ``with_cp``:
    puts (rank, error or (losses, parameter updates))."""
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    torch.set_num_threads(1)
    try:
        runs = []
        for with_cp in (False, True):
            model = build_model(with_cp=with_cp, drop_path_rate=0.2)
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            ddp = MMDistributedDataParallel(model, find_unused_parameters=True)
            wrapper = OPTIM_WRAPPERS.build(dict(
                type='OptimWrapper', optimizer=torch.optim.SGD(model.parameters(), lr=1.)))
            data = demo_cxr_inputs(2, 64, 'seg', 'jsrt', num_seg=3, seed=rank)
            with torch.random.fork_rng():
                torch.manual_seed(rank)  # drop path, drawn per rank
                log_vars = ddp.train_step(data, wrapper)
            # numpy: tensors would travel through shared memory that dies with the process
            updates = {n: (before[n] - p.detach()).numpy()
                       for n, p in model.named_parameters()}
            runs.append((float(log_vars['loss']), updates))
        results.put((rank, runs))
    except RuntimeError as err:
        results.put((rank, str(err)))
    finally:
        dist.destroy_process_group()


def test_with_cp_under_ddp():
    """Two gloo processes, DDP with find_unused_parameters=True: the checkpointed Swin
    (non-reentrant, fxmm.models.backbones) trains, with the loss and the all-reduced
    gradients of the run without checkpointing, the same on both ranks."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = torch.multiprocessing.get_context('fork')
    queue = ctx.Queue()
    procs = [ctx.Process(target=_with_cp_ddp_worker, args=(rank, port, queue))
             for rank in (0, 1)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    errors = {rank: r for rank, r in results.items() if isinstance(r, str)}
    assert not errors, errors
    for rank in (0, 1):
        (loss_plain, plain), (loss_cp, checkpointed) = results[rank]
        assert loss_cp == pytest.approx(loss_plain, rel=1e-6)
        assert plain.keys() == checkpointed.keys()
        assert sum(bool(u.any()) for u in plain.values()) > 100  # the step moved the model
        for name in plain:
            np.testing.assert_allclose(checkpointed[name], plain[name], rtol=1e-4, atol=1e-6,
                                       err_msg=f'rank {rank}: {name}')
    for name, update in results[0][1][1].items():  # DDP: both ranks took the same step
        np.testing.assert_array_equal(results[1][1][1][name], update, err_msg=name)


def test_with_cp_keeps_mmpretrain_state_dict_keys():
    """The non-reentrant blocks are the same modules: the converters' mmpretrain keys."""
    cfg = get_tiny_model_cfg()
    plain = MODELS.build(cfg.backbone)
    model = build_model(with_cp=True)
    assert model.backbone.state_dict().keys() == plain.state_dict().keys()
    assert all(isinstance(m, NonReentrantSwinBlock)
               for m in model.backbone.modules() if isinstance(m, SwinBlock))
    assert use_non_reentrant_checkpoint(model) == 0  # already converted


def test_train_tool_resume_without_checkpoint_keeps_load_from(monkeypatch,
                                                              tmp_path):
    """`--resume` in a fresh work dir (a requeue script's first run) starts from the
    config's load_from, not from random weights; with a checkpoint there it resumes."""
    train = load_tool('train')
    argv = ['train.py', osp.join(ROOT, 'configs/foundation_x_demo.py'), '--resume',
            '--work-dir', str(tmp_path), '--cfg-options', 'load_from=pretrained.pth']
    monkeypatch.setattr(sys, 'argv', argv)
    cfg = train.build_cfg(train.parse_args())
    assert (cfg.resume, cfg.load_from) == (False, 'pretrained.pth')
    torch.save(dict(state_dict={}), tmp_path / 'iter_4.pth')
    cfg = train.build_cfg(train.parse_args())
    assert (cfg.resume, cfg.load_from) == (True, str(tmp_path / 'iter_4.pth'))
