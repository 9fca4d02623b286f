"""VinDr-RibCXR: column-oriented JSON polygons, "None" ribs, official train/val."""
import numpy as np

from data_converters.vindr_ribcxr import RIBS, VinDrRibCXRConverter
from fixtures import assert_skipped, converted, decoded, write_vindr_ribcxr


def test_vindr_ribcxr(tmp_path):
    root = str(tmp_path / 'VinDr-RibCXR')
    truth = write_vindr_ribcxr(root)
    VinDrRibCXRConverter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for stem, item in good.items():
        entry = entries[stem]
        assert set(entry['seg']) == set(item['masks'])  # "None" ribs: empty masks
        for rib in RIBS:
            expected = item['masks'].get(rib, np.zeros((36, 40), np.uint8))
            np.testing.assert_array_equal(decoded(entry, rib), expected)
        assert (entry['split'] == 'test') == (item['split'] == 'test')
    assert_skipped(root, {k + '.png': v['reason'] for k, v in truth.items() if 'reason' in v})
