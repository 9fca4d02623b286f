"""Install fxmm: ``pip install -e .`` into an environment that has PyTorch and mmcv (with ops).

Requirements are ranges (``requirements/runtime.txt``), so an existing cluster environment
keeps its own torch and mmcv; ``tools/setup.sh`` builds a fresh one with the tested stack
(``requirements/tested.txt``)."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))


def get_version():
    scope = {}
    with open(osp.join(ROOT, 'fxmm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def add_mim_extension():
    """Expose configs/ and tools/ as ``fxmm/.mim/`` so ``'fxmm::...'`` config bases resolve.

    Symlinks in develop (``pip install -e``) mode, copies otherwise, as OpenMMLab repos do.
    """
    mim_root = osp.join(ROOT, 'fxmm', '.mim')
    use_link = 'develop' in sys.argv or 'editable_wheel' in sys.argv
    for name in ('configs', 'tools'):
        src, dst = osp.join(ROOT, name), osp.join(mim_root, name)
        if osp.lexists(dst):
            if osp.islink(dst) or osp.isfile(dst):
                os.remove(dst)
            else:
                shutil.rmtree(dst)
        os.makedirs(mim_root, exist_ok=True)
        if use_link:
            os.symlink(osp.relpath(src, mim_root), dst)
        else:
            shutil.copytree(src, dst)


def parse_requirements(name: str) -> list:
    """The requirement lines of ``requirements/<name>.txt`` (comments and blanks dropped)."""
    with open(osp.join(ROOT, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='fxmm',
        version=get_version(),
        description='Foundation X: multi-dataset, multi-task chest X-ray pretraining on OpenMMLab',
        packages=find_packages(include=['fxmm', 'fxmm.*']),
        include_package_data=True,
        python_requires='>=3.9',
        install_requires=parse_requirements('runtime'),
        extras_require={'tests': parse_requirements('tests')},
        license='Apache License 2.0',
    )
