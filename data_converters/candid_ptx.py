"""CANDID-PTX -> fxmm annotations (cls, loc, seg).

Official layout (the CANDID-PTX release, after the data-use agreement)::

    CANDID-PTX/
      Pneumothorax_reports.csv     SOPInstanceUID (``<uid>`` or the file name ``<uid>.dcm``),
                                   EncodedPixels (SIIM-style RLE, '-1' = none), and free-text
                                   report fields (quoted, multi-line)
      acute_rib_fracture.csv, chest_tube.csv   (not used)
      <any folders>/<SOPInstanceUID>.dcm       the images, anywhere below the root

Images are matched as for SIIM-ACR: by the exact file name, the file stem, then the DICOM
header's SOPInstanceUID (the report counts each rule's images). Masks are decoded and merged
as for SIIM-ACR (several rows per image); boxes are the 8-connected mask components. There
is no official split: patient-level, seeded (DICOM Patient ID). Usage::

    python data_converters/candid_ptx.py --root data/cxr/CANDID-PTX
"""
import os.path as osp
import sys

if __package__ in (None, ''):  # run as a script: import from the repository root
    sys.path[0] = osp.dirname(osp.dirname(osp.abspath(__file__)))

from data_converters.siim_acr import SIIMACRConverter  # noqa: E402


class CANDIDPTXConverter(SIIMACRConverter):
    """CANDID-PTX: ``Pneumothorax_reports.csv`` + DICOMs named by SOPInstanceUID."""

    dataset = 'candid_ptx'
    source = ('CANDID-PTX, Feng et al., "Curation of the CANDID-PTX dataset with free-text '
              'reports", Radiology: AI 2021')
    table_names = ('Pneumothorax_reports.csv', )
    id_column = 'SOPInstanceUID'
    image_suffixes = ('.dcm', '.dicom')


if __name__ == '__main__':
    sys.exit(CANDIDPTXConverter.main())
