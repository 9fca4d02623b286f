"""Shenzhen: TB label from the file-name suffix; other files ignored, bad names reported."""
from data_converters.shenzhen import ShenzhenConverter, nlm_tb_label
from fixtures import assert_skipped, converted, write_shenzhen


def test_shenzhen(tmp_path):
    root = str(tmp_path / 'ChinaSet_AllFiles')
    names = write_shenzhen(root)
    ShenzhenConverter(root=root).run()
    entries = converted(root)
    good = {n[:-4]: label for n, label in names.items() if label is not None}
    assert {k: e['cls_label'] for k, e in entries.items()} == {k: [v] for k, v in good.items()}
    assert_skipped(root, {'CHNCXR_0004.png': 'does not match'})


def test_nlm_tb_label():
    assert nlm_tb_label('CHNCXR_0331_1.png', 'CHNCXR') == 1
    assert nlm_tb_label('MCUCXR_0001_0.png', 'MCUCXR') == 0
    assert nlm_tb_label('MCUCXR_0001_2.png', 'MCUCXR') is None
    assert nlm_tb_label('CHNCXR_0001_0.png', 'MCUCXR') is None
