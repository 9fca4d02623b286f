"""Montgomery: left/right lung masks (0/255 PNG) at image size, TB label from the name."""
import numpy as np

from data_converters.montgomery import MontgomeryConverter
from fixtures import assert_skipped, converted, decoded, write_montgomery


def test_montgomery(tmp_path):
    root = str(tmp_path / 'MontgomerySet')
    truth = write_montgomery(root)
    MontgomeryConverter(root=root).run()
    entries = converted(root)
    good = {k: v for k, v in truth.items() if 'reason' not in v}
    assert set(entries) == set(good)
    for stem, item in good.items():
        entry = entries[stem]
        assert entry['cls_label'] == [item['label']]
        for name in ('left_lung', 'right_lung'):
            np.testing.assert_array_equal(decoded(entry, name), item[name])
    assert_skipped(root, {'MCUCXR_0003_0.png': r'leftMask.*not found'})
