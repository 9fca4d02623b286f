"""CheXmask organs of VinDr-CXR: row-major 1-indexed RLE, Height/Width checked, boxes."""
import numpy as np

from data_converters.vindr_cxr_organs import CHEXMASK_ORGANS, VinDrCXROrgansConverter
from fixtures import assert_skipped, box_of, converted, decoded, report_of, write_chexmask, \
    write_vindr_cxr


def test_vindr_cxr_organs(tmp_path):
    root = str(tmp_path / 'vindr-cxr')
    write_vindr_cxr(root)
    csv_path = str(tmp_path / 'CheXmask' / 'OriginalResolution' / 'VinDr-CXR.csv')
    truth = write_chexmask(root, csv_path)
    VinDrCXROrgansConverter(root=root, chexmask_csv=csv_path).run()
    entries = converted(root, prefix='organs_')
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for image_id, item in good.items():
        entry = entries[image_id]
        for organ, mask in item['masks'].items():
            np.testing.assert_array_equal(decoded(entry, organ), mask)
        assert [(i['bbox'], i['bbox_label']) for i in entry['instances']] == [
            (box_of(item['masks'][o]), label) for label, o in enumerate(CHEXMASK_ORGANS)
            if item['masks'][o].any()]
    assert 'heart' not in entries['b']['seg']
    assert report_of(root, 'organs_')['counts'] == {
        'images with Dice RCA below 0.7 left out': 1}
    # the images below --min-dice-rca are listed (with their Dice RCA) as every other skip
    assert_skipped(root, {k: v['reason'] for k, v in truth.items() if 'reason' in v},
                   prefix='organs_')
