"""JSRT + SCR: raw big-endian 12-bit inverted images averaged to the GIF mask grid."""
import cv2
import numpy as np

from data_converters.jsrt import JSRTConverter
from fixtures import assert_skipped, converted, decoded, write_jsrt


def test_jsrt(tmp_path):
    root = str(tmp_path / 'JSRT')
    truth = write_jsrt(root)
    JSRTConverter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for stem, item in good.items():
        entry = entries[stem]
        assert (entry['height'], entry['width']) == (16, 16)
        assert entry['img_path'] == f'png/All247images/{stem}.png'
        png = cv2.imread(f'{root}/{entry["img_path"]}', cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint16
        np.testing.assert_array_equal(png, item['expected_png'])  # inverted, 2x2 averaged
        for name, mask in item['masks'].items():
            np.testing.assert_array_equal(decoded(entry, name), mask)
    assert entries['JPCNN002']['split'] == 'test'
    assert entries['JPCLN001']['split'] in ('train', 'val')
    assert_skipped(root, {k: v['reason'] for k, v in truth.items() if 'reason' in v})
