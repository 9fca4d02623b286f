"""NaN/inf losses: the step is skipped (parameters and optimiser state unchanged), warned
with the iteration and every loss term, and the run stops after `max_nonfinite` in a row."""
import copy
import re
import socket

import pytest
import torch
import torch.distributed as dist
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import fxmm.engine.optim_wrappers as optim_wrappers
from fxmm.registry import OPTIM_WRAPPERS

NAN, INF = float('nan'), float('inf')


class ToyModel(BaseModel):
    """y = w.x + b; two loss terms so the warning has several values to give."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[0.5, -0.25]]))
            self.linear.bias.fill_(0.1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            return dict(loss_main=out.mean(), loss_aux=(out ** 2).mean())
        return out


def batch(*values):
    """One packed batch; a nan/inf value makes every loss term non-finite."""
    return dict(inputs=[torch.tensor([v, 1.0]) for v in values])


@pytest.fixture
def warnings(monkeypatch):
    """The warnings the wrappers log."""
    logged = []
    monkeypatch.setattr(optim_wrappers, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    return logged


def build(model, type='SafeOptimWrapper', **kwargs):
    return OPTIM_WRAPPERS.build(dict(
        type=type, optimizer=torch.optim.AdamW(model.parameters(), lr=0.1), **kwargs))


def state(model, wrapper):
    return copy.deepcopy((model.state_dict(), wrapper.optimizer.state_dict()))


def assert_same(a, b):
    (params_a, optim_a), (params_b, optim_b) = a, b
    for key in params_a:
        assert torch.equal(params_a[key], params_b[key]), key
    assert repr(optim_a) == repr(optim_b)


@pytest.mark.parametrize('bad', [NAN, INF, -INF])
def test_nonfinite_step_is_skipped_and_warned(bad, warnings):
    model = ToyModel()
    wrapper = build(model, max_nonfinite=3)
    model.train_step(batch(1.0, 2.0), wrapper)
    before = state(model, wrapper)
    assert before[1]['state'][0]['step'] == 1  # AdamW stepped once

    model.train_step(batch(bad, 2.0), wrapper)
    assert_same(state(model, wrapper), before)  # no parameter or Adam-moment change
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert (wrapper.consecutive_nonfinite, wrapper.total_nonfinite) == (1, 1)
    assert len(warnings) == 1
    text = warnings[0]
    assert 'non-finite loss' in text and 'loss_main=' in text and 'loss_aux=' in text
    assert f'loss_main={bad:.4g}' in text  # the value of every term is given
    assert '1 in a row, 1 in total, stops after 3 in a row' in text

    model.train_step(batch(3.0, -1.0), wrapper)  # the run goes on and trains again
    after = state(model, wrapper)
    assert not torch.equal(after[0]['linear.weight'], before[0]['linear.weight'])
    assert after[1]['state'][0]['step'] == 2
    assert (wrapper.consecutive_nonfinite, wrapper.total_nonfinite) == (0, 1)


def test_stops_after_max_nonfinite_in_a_row(warnings):
    model = ToyModel()
    wrapper = build(model, max_nonfinite=2)
    for _ in range(2):
        model.train_step(batch(NAN), wrapper)
    model.train_step(batch(1.0), wrapper)  # a good step resets the run of bad ones
    for _ in range(2):
        model.train_step(batch(NAN), wrapper)
    with pytest.raises(RuntimeError, match=r'3 iterations in a row had a non-finite loss '
                                           r'or gradient \(max_nonfinite=2\), so training '
                                           'stops'):
        model.train_step(batch(NAN), wrapper)
    assert wrapper.total_nonfinite == 5


@pytest.mark.parametrize('clip', [None, dict(max_norm=1.0)])
def test_finite_loss_with_nonfinite_gradient_skips_the_step(warnings, clip):
    """sqrt(|w x|) at 0 is a finite loss with an inf gradient: without the check, clipping
    would make every gradient NaN and AdamW every weight; here the step is skipped, the
    weights and Adam state stay, and such steps count towards max_nonfinite."""
    weight = nn.Parameter(torch.tensor([[0.0, 0.0]]))
    bias = nn.Parameter(torch.tensor([0.5]))
    wrapper = OPTIM_WRAPPERS.build(dict(type='SafeOptimWrapper', max_nonfinite=1,
                                        clip_grad=clip,
                                        optimizer=torch.optim.AdamW([weight, bias], lr=0.1)))
    x = torch.tensor([[1.0, 2.0]])

    def loss():
        return torch.sqrt((x @ weight.t()).abs()).sum() + (bias ** 2).sum()

    wrapper.update_params(loss())
    assert torch.equal(weight, torch.zeros(1, 2)) and bias.item() == 0.5
    assert wrapper.optimizer.state == {}  # AdamW never stepped
    assert weight.grad is None or not weight.grad.any()
    assert wrapper.consecutive_nonfinite == 1
    assert re.search(r'non-finite gradient( at iter \d+)? \(finite loss\); optimiser step '
                     'skipped', warnings[-1])
    with pytest.raises(RuntimeError, match='2 iterations in a row had a non-finite loss or '
                                           'gradient'):
        wrapper.update_params(loss())
    with torch.no_grad():
        weight.fill_(1.0)
    wrapper.consecutive_nonfinite = 0
    wrapper.update_params(loss())  # finite gradients: a normal step
    assert not torch.equal(weight, torch.ones(1, 2)) and torch.isfinite(weight).all()
    assert wrapper.consecutive_nonfinite == 0


def test_amp_variant_skips_too(warnings):
    model = ToyModel()
    wrapper = build(model, type='SafeAmpOptimWrapper', max_nonfinite=1)
    before = state(model, wrapper)
    model.train_step(batch(NAN), wrapper)
    assert_same(state(model, wrapper), before)
    model.train_step(batch(1.0), wrapper)
    assert wrapper.optimizer.state_dict()['state'][0]['step'] == 1


def test_accumulation_window_with_a_bad_iteration_is_dropped(warnings):
    model = ToyModel()
    wrapper = build(model, accumulative_counts=2)
    before = state(model, wrapper)
    model.train_step(batch(1.0), wrapper)  # accumulates
    model.train_step(batch(NAN), wrapper)  # ends the window: dropped, not stepped
    assert_same(state(model, wrapper), before)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    model.train_step(batch(1.0), wrapper)
    model.train_step(batch(2.0), wrapper)  # the next window steps
    assert wrapper.optimizer.state_dict()['state'][0]['step'] == 1


def test_bad_max_nonfinite():
    with pytest.raises(ValueError, match='max_nonfinite must be an int >= 0, got -1'):
        build(ToyModel(), max_nonfinite=-1)


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, bad=()):
        self.bad = set(bad)

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(inputs=torch.tensor([NAN if idx in self.bad else idx / 8, 1.0]))


def run(tmp_path, bad, max_nonfinite):
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path),
        train_dataloader=dict(dataset=ToyDataset(bad), batch_size=1, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        optim_wrapper=dict(type='SafeOptimWrapper', max_nonfinite=max_nonfinite,
                           optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=6, val_interval=100),
        default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=100)),
        default_scope='fxmm',
        experiment_name=f'nan_{tmp_path.name}')
    runner.train()
    return runner


def test_runner_continues_past_a_nan_iteration(tmp_path, warnings):
    runner = run(tmp_path, bad={2}, max_nonfinite=1)
    assert runner.iter == 6  # trained to the end
    assert runner.optim_wrapper.total_nonfinite == 1
    assert any('non-finite loss at iter 3: loss=nan' in w for w in warnings)


def test_runner_stops_after_the_limit(tmp_path, warnings):
    with pytest.raises(RuntimeError, match=r'non-finite loss at iter 4: .*2 iterations in a '
                                           r'row .*max_nonfinite=1'):
        run(tmp_path, bad={2, 3}, max_nonfinite=1)


def _ddp_worker(rank, port, results):
    """Rank 1 sees a NaN loss at step 2, rank 0 does not: both must skip it."""
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    torch.set_num_threads(1)
    model = ToyModel()
    ddp = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    wrapper = build(model, max_nonfinite=3)
    for step, value in enumerate([1.0, NAN if rank == 1 else 2.0, 3.0]):
        # the DDP wrapper's forward runs inside the model's train_step
        with wrapper.optim_context(ddp):
            losses = ddp(**batch(value + rank), mode='loss')
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)
        results.put((rank, step, model.linear.weight.detach().clone()))
    results.put((rank, 'skipped', wrapper.total_nonfinite))
    dist.destroy_process_group()


def test_ddp_ranks_skip_together():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = torch.multiprocessing.get_context('fork')
    results = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(rank, port, results)) for rank in (0, 1)]
    for proc in procs:
        proc.start()
    out = {}
    for _ in range(8):
        rank, key, value = results.get(timeout=60)
        out[rank, key] = value
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert out[0, 'skipped'] == out[1, 'skipped'] == 1
    for step in range(3):
        assert torch.equal(out[0, step], out[1, step])  # ranks in step
    assert torch.equal(out[0, 1], out[0, 0])  # the NaN step changed nothing
    assert not torch.equal(out[0, 2], out[0, 1])  # the next one trained
