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


def test_failed_write_keeps_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'iter_4.pth'
    path.write_bytes(b'old complete checkpoint')

    def killed(fd):
        raise KeyboardInterrupt('killed while saving')

    monkeypatch.setattr(os, 'fsync', killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(b'new partial', path)
    assert path.read_bytes() == b'old complete checkpoint'
    assert os.listdir(tmp_path) == ['iter_4.pth']


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
