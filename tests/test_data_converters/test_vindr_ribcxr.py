"""VinDr-RibCXR: column-oriented JSON polygons, "None" ribs, official train/val, found by
the official table names (and the names earlier fxmm versions asked for)."""
import numpy as np
import pytest

from data_converters.vindr_ribcxr import RIBS, VinDrRibCXRConverter
from fixtures import assert_skipped, converted, decoded, write_vindr_ribcxr


@pytest.mark.parametrize('table_name', ['Vindr_RibCXR_{split}_mask.json',  # the README's
                                        'VinDr_RibCXR_{split}.json'])
def test_vindr_ribcxr(tmp_path, table_name):
    root = str(tmp_path / 'VinDr-RibCXR')
    truth = write_vindr_ribcxr(root, table_name)
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


def test_missing_table_names_the_files_looked_for(tmp_path):
    root = tmp_path / 'VinDr-RibCXR'
    (root / 'data' / 'train').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"VinDr-RibCXR train annotations: none of "
                                                r"\['Vindr_RibCXR_train_mask.json', "
                                                r"'VinDr_RibCXR_train.json'\] found"):
        VinDrRibCXRConverter(root=str(root)).run()
