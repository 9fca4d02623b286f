"""Convert every dataset found in a folder of datasets, each in its official folder name.

::

    data/cxr/                         (--datasets)
      CXR8/                           ChestX-ray14          data_converters/chestxray14.py
      CheXpert-v1.0-small/            CheXpert (or CheXpert-v1.0)  chexpert.py
      mimic-cxr-jpg/                  MIMIC-CXR-JPG         mimic_cxr.py
      vindr-cxr/                      VinDr-CXR             vindr_cxr.py
      CheXmask/.../VinDr-CXR.csv      + VinDr-CXR organs    vindr_cxr_organs.py
      ChinaSet_AllFiles/              Shenzhen              shenzhen.py
      rsna-pneumonia-detection-challenge/  RSNA Pneumonia   rsna_pneumonia.py
      TBX11K/                         TBX11K                tbx11k.py
      node21/                         NODE21                node21.py
      CANDID-PTX/                     CANDID-PTX            candid_ptx.py
      siim-acr-pneumothorax/          SIIM-ACR              siim_acr.py
      ChestX-Det/                     ChestX-Det            chestx_det.py
      JSRT/                           JSRT + SCR            jsrt.py
      MontgomerySet/                  Montgomery            montgomery.py
      VinDr-RibCXR/                   VinDr-RibCXR          vindr_ribcxr.py

Each present dataset is converted into its own folder (``<folder>/annotations/``), with the
common options (``--workers``, ``--to-png``, ``--overwrite``, split options) passed on. A
dataset that was converted before is left alone unless ``--overwrite``; one that fails is
reported and the others still run. A run stopped by SIGTERM or Ctrl-C says how to resume it:
the same command again (without ``--overwrite``) leaves the converted datasets alone and
resumes the interrupted one. Usage::

    python data_converters/convert_all.py --datasets data/cxr --workers 8
"""
import argparse
import glob
import logging
import os.path as osp
import sys
import traceback
from collections import OrderedDict
from typing import Dict, Optional, Sequence

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from mmengine.logging import print_log  # noqa: E402

from data_converters.candid_ptx import CANDIDPTXConverter  # noqa: E402
from data_converters.chestx_det import ChestXDetConverter  # noqa: E402
from data_converters.chestxray14 import ChestXray14Converter  # noqa: E402
from data_converters.chexpert import CheXpertConverter  # noqa: E402
from data_converters.common import add_common_arguments, resume_hint_on_interrupt  # noqa: E402
from data_converters.jsrt import JSRTConverter  # noqa: E402
from data_converters.mimic_cxr import MIMICCXRConverter  # noqa: E402
from data_converters.montgomery import MontgomeryConverter  # noqa: E402
from data_converters.node21 import NODE21Converter  # noqa: E402
from data_converters.rsna_pneumonia import RSNAPneumoniaConverter  # noqa: E402
from data_converters.shenzhen import ShenzhenConverter  # noqa: E402
from data_converters.siim_acr import SIIMACRConverter  # noqa: E402
from data_converters.tbx11k import TBX11KConverter  # noqa: E402
from data_converters.vindr_cxr import VinDrCXRConverter  # noqa: E402
from data_converters.vindr_cxr_organs import VinDrCXROrgansConverter  # noqa: E402
from data_converters.vindr_ribcxr import VinDrRibCXRConverter  # noqa: E402

# name -> (official folder names, converter)
DATASETS = OrderedDict(
    chestxray14=(('CXR8', ), ChestXray14Converter),
    chexpert=(('CheXpert-v1.0-small', 'CheXpert-v1.0'), CheXpertConverter),
    mimic_cxr=(('mimic-cxr-jpg', ), MIMICCXRConverter),
    vindr_cxr=(('vindr-cxr', ), VinDrCXRConverter),
    vindr_cxr_organs=(('vindr-cxr', ), VinDrCXROrgansConverter),
    shenzhen=(('ChinaSet_AllFiles', ), ShenzhenConverter),
    rsna_pneumonia=(('rsna-pneumonia-detection-challenge', ), RSNAPneumoniaConverter),
    tbx11k=(('TBX11K', ), TBX11KConverter),
    node21=(('node21', ), NODE21Converter),
    candid_ptx=(('CANDID-PTX', ), CANDIDPTXConverter),
    siim=(('siim-acr-pneumothorax', ), SIIMACRConverter),
    chestx_det=(('ChestX-Det', ), ChestXDetConverter),
    jsrt=(('JSRT', ), JSRTConverter),
    montgomery=(('MontgomerySet', ), MontgomeryConverter),
    vindr_ribcxr=(('VinDr-RibCXR', ), VinDrRibCXRConverter),
)
# where the CheXmask table of VinDr-CXR is looked for, under --datasets
CHEXMASK_PATTERN = osp.join('CheXmask', '**', 'VinDr-CXR.csv')


def _extra_args(name: str, datasets: str) -> Optional[dict]:
    """Dataset-specific arguments, or None when a needed extra file is absent."""
    if name != 'vindr_cxr_organs':
        return {}
    tables = sorted(glob.glob(osp.join(datasets, CHEXMASK_PATTERN), recursive=True))
    return dict(chexmask_csv=tables[0]) if tables else None


def convert_all(datasets: str, only: Sequence[str] = (), **options) -> Dict[str, str]:
    """Run the converter of every dataset present in ``datasets``.

    Args:
        datasets (str): The folder holding the datasets in their official folder names.
        only (Sequence[str]): Convert only these (keys of :data:`DATASETS`); all if empty.
        **options: Common converter options (``overwrite``, ``workers``, ``to_png``,
            ``split_seed``, ``val_fraction``, ``test_fraction``).

    Returns:
        dict: dataset name -> outcome (``'converted N images'``, ``'already converted'``,
        ``'not found'`` or ``'failed: <error>'``).
    """
    unknown = sorted(set(only) - set(DATASETS))
    if unknown:
        raise ValueError(f'unknown dataset(s) {unknown}; known: {list(DATASETS)}')
    outcome = {}
    for name, (folders, converter) in DATASETS.items():
        if only and name not in only:
            continue
        root = next((osp.join(datasets, f) for f in folders
                     if osp.isdir(osp.join(datasets, f))), None)
        extra = _extra_args(name, datasets)
        if root is None or extra is None:
            outcome[name] = 'not found'
            continue
        print_log(f'==> {name}: {root}', logger='current')
        try:
            report = converter(root=root, **extra, **options).run()
        except FileExistsError as err:
            outcome[name] = f'already converted ({err})'
        except (FileNotFoundError, ValueError, OSError) as err:  # bad input, said in words
            outcome[name] = f'failed: {err}'
        except Exception as err:  # noqa: B902 - a bug for one dataset must not stop the rest
            print_log(f'{name} failed:\n{traceback.format_exc()}', logger='current',
                      level=logging.ERROR)
            outcome[name] = f'failed: {type(err).__name__}: {err}'
        else:
            outcome[name] = (f'converted {sum(report.converted.values())} images, '
                             f'skipped {len(report.skipped)}')
    return outcome


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert every dataset found in a folder of datasets.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--datasets', required=True,
                        help='folder holding the datasets in their official folder names')
    parser.add_argument('--only', nargs='+', default=(), choices=list(DATASETS),
                        help='convert only these')
    add_common_arguments(parser, with_root=False)
    args = vars(parser.parse_args(argv))
    again = 'the same command again' + (' without --overwrite' if args['overwrite'] else '')
    with resume_hint_on_interrupt(lambda: f'run {again} to resume: the datasets converted '
                                  'so far are left alone, the interrupted one resumes where '
                                  'it stopped'):
        outcome = convert_all(args.pop('datasets'), args.pop('only'), **args)
    for name, result in outcome.items():
        print_log(f'{name:18s} {result}', logger='current')
    converted = [r for r in outcome.values() if r.startswith(('converted', 'already'))]
    failed = [r for r in outcome.values() if r.startswith('failed')]
    return 1 if failed or not converted else 0


if __name__ == '__main__':
    sys.exit(main())
