"""Checkpoint writes through the atomic backend never leave a partial file."""
import os

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from fxmm.utils.atomic_io import AtomicLocalBackend, atomic_write_bytes


def test_backend_is_selected_by_backend_args(tmp_path):
    backend = get_file_backend(str(tmp_path), backend_args=dict(backend='atomic_local'))
    assert isinstance(backend, AtomicLocalBackend)
    path = tmp_path / 'ckpt.pth'
    save_checkpoint({'state_dict': {'w': torch.arange(3)}}, str(path),
                    backend_args=dict(backend='atomic_local'))
    assert torch.equal(torch.load(path)['state_dict']['w'], torch.arange(3))
    backend.put_text('iter_4.pth', tmp_path / 'last_checkpoint')
    assert (tmp_path / 'last_checkpoint').read_text() == 'iter_4.pth'
    assert sorted(os.listdir(tmp_path)) == ['ckpt.pth', 'last_checkpoint']


def _check_a_write_killed_before_its_rename(write, path, monkeypatch):
    """``write(data, path)`` interrupted at its fsync keeps ``path``'s old content whole and
    leaves no temporary file."""
    path.write_bytes(b'old complete checkpoint')

    def killed(fd):
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(os, 'fsync', killed)
    with pytest.raises(KeyboardInterrupt):
        write(b'new partial', path)
    assert path.read_bytes() == b'old complete checkpoint'
    assert os.listdir(path.parent) == [path.name]


def test_failed_write_keeps_old_file_and_no_temporary(tmp_path, monkeypatch):
    _check_a_write_killed_before_its_rename(atomic_write_bytes, tmp_path / 'iter_4.pth',
                                            monkeypatch)


def test_umask_permissions_and_a_killed_writes_leftover_is_reused(tmp_path):
    """The file gets the umask's permissions (not mkstemp's owner-only 0600), and the
    temporary file a SIGKILL left behind is overwritten by the next write of the same file."""
    path = tmp_path / 'iter_8.pth'
    (tmp_path / '.iter_8.pth.tmp').write_bytes(b'half a checkpoint')  # killed before rename
    old = os.umask(0o022)
    try:
        atomic_write_bytes(b'complete', path)
    finally:
        os.umask(old)
    assert path.read_bytes() == b'complete'
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ['iter_8.pth']


def test_the_default_runtimes_checkpoints_survive_a_kill_while_saving(tmp_path, monkeypatch):
    """configs/_base_/default_runtime.py (which every fxmm config inherits) saves checkpoints
    and ``last_checkpoint`` through the atomic backend: a save killed half way keeps the old
    file whole."""
    from mmengine.config import Config

    from fxmm.registry import HOOKS
    runtime = Config.fromfile(os.path.join(os.path.dirname(__file__), '..', '..', 'configs',
                                           '_base_', 'default_runtime.py'))
    hook = HOOKS.build(runtime.default_hooks.checkpoint)
    backend = get_file_backend(str(tmp_path), backend_args=hook.backend_args)
    assert isinstance(backend, AtomicLocalBackend)
    _check_a_write_killed_before_its_rename(backend.put, tmp_path / 'iter_500.pth', monkeypatch)
