"""``pip install .`` into a cluster's environment keeps the torch, torchvision and mmcv it has.

The target environment is a new venv that sees this venv's packages (every other dependency)
through a ``.pth`` file and holds its own torch / torchvision / mmcv builds of other versions,
as a cluster environment does (distribution metadata only: pip decides from metadata).
pip resolves offline (``--no-index``), so a requirement those builds do not meet fails the
resolution instead of downloading a replacement.
"""
import json
import os
import os.path as osp
import shutil
import site
import subprocess
import sys
import venv

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# a CUDA cluster's own builds (not the tested stack of requirements/tested.txt)
CLUSTER_BUILDS = {'torch': '2.1.0+cu121', 'torchvision': '0.16.0+cu121', 'mmcv': '2.1.0'}


def _fake_distribution(site_packages: str, name: str, version: str):
    info = osp.join(site_packages, f'{name}-{version}.dist-info')
    os.makedirs(info)
    with open(osp.join(info, 'METADATA'), 'w') as f:
        f.write(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
    with open(osp.join(info, 'RECORD'), 'w') as f:
        f.write('')


def _project_copy(dst: str) -> str:
    """setup.py, its requirements and version file: the metadata pip builds (``configs`` and
    ``tools`` empty: the mim extension copies them)."""
    os.makedirs(dst)
    for name in ('setup.py', 'MANIFEST.in'):
        shutil.copy(osp.join(ROOT, name), dst)
    shutil.copytree(osp.join(ROOT, 'requirements'), osp.join(dst, 'requirements'))
    os.makedirs(osp.join(dst, 'fxmm'))
    for name in ('__init__.py', 'version.py'):
        shutil.copy(osp.join(ROOT, 'fxmm', 'version.py'), osp.join(dst, 'fxmm', name))
    for name in ('configs', 'tools'):
        os.makedirs(osp.join(dst, name))
    return dst


def test_pip_install_keeps_the_environments_torch_and_mmcv(tmp_path):
    env = tmp_path / 'cluster-env'
    venv.create(env, with_pip=False)
    python = str(env / 'bin' / 'python')
    target_site = subprocess.check_output(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
        text=True).strip()
    with open(osp.join(target_site, 'this-venv.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    for name, version in CLUSTER_BUILDS.items():
        _fake_distribution(target_site, name, version)
    project = _project_copy(str(tmp_path / 'fxmm-src'))
    report = tmp_path / 'report.json'
    result = subprocess.run(
        [sys.executable, '-m', 'pip', '--python', python, 'install', '--dry-run', '--no-index',
         '--no-build-isolation', '--disable-pip-version-check', '--report', str(report),
         project], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    would_install = {item['metadata']['name'] for item in json.loads(report.read_text())['install']}
    assert would_install == {'fxmm'}
