"""Install fxmm. The heavy stack (torch, mmcv with ops) is set up by tools/setup.sh first."""
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


INSTALL_REQUIRES = [
    'torch==2.14.1',
    'torchvision==0.29.1',
    'mmengine==0.10.7',
    'mmcv>=2.0.0rc4,<2.2.0',
    'mmdet==3.3.0',
    'mmsegmentation==1.2.2',
    'mmpretrain==1.2.0',
    # mmsegmentation 1.2.2 imports these without declaring them
    'ftfy',
    'regex',
    'numpy',
    'scipy',
    'pydicom>=2.4',
    # pixel-data plugins for compressed DICOM: JPEG, JPEG-LS, JPEG 2000, RLE
    'pylibjpeg>=2',
    'pylibjpeg-libjpeg',
    'pylibjpeg-openjpeg',
    'pylibjpeg-rle',
    'SimpleITK',
    'pycocotools',
    'scikit-learn',
    'matplotlib',
    'opencv-python-headless',
    'Pillow',
]

if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='fxmm',
        version=get_version(),
        description='Foundation X: multi-dataset, multi-task chest X-ray pretraining on OpenMMLab',
        packages=find_packages(include=['fxmm', 'fxmm.*']),
        include_package_data=True,
        python_requires='>=3.9',
        install_requires=INSTALL_REQUIRES,
        extras_require={'tests': ['pytest', 'pytest-timeout']},
        license='Apache License 2.0',
    )
