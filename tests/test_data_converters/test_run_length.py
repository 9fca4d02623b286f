"""The SIIM/CANDID and CheXmask RLE decoders against hand-made examples and encoders."""
import numpy as np
import pytest
from scipy import ndimage

from data_converters.run_length import decode_chexmask_rle, decode_siim_rle, decode_siim_rles
from fixtures import chexmask_rle, siim_rle


def test_siim_hand_made():
    # H=3, W=4, pixels numbered down the columns: (r, c) -> 3c + r
    mask = decode_siim_rle('1 2 3 1', 3, 4)  # pixels 1, 2 then (1 + 2 + 3) = 6
    expected = np.zeros((3, 4), np.uint8)
    expected[1:3, 0] = 1  # pixels 1, 2: rows 1-2 of column 0
    expected[0, 2] = 1  # pixel 6: row 0 of column 2
    np.testing.assert_array_equal(mask, expected)
    # a run crossing into the next column; first offset 0
    np.testing.assert_array_equal(decode_siim_rle(' 0 4', 3, 4),
                                  [[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize('text', ['-1', ' -1', ''])
def test_siim_empty(text):
    assert not decode_siim_rle(text, 5, 7).any()


def test_siim_reference_encoder_round_trip_and_rows_merged():
    rng = np.random.default_rng(0)
    mask = (ndimage.uniform_filter(rng.random((37, 23)), 5) > 0.55).astype(np.uint8)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    assert n >= 3
    np.testing.assert_array_equal(decode_siim_rle(siim_rle(mask), 37, 23), mask)
    rows = [siim_rle(labels == i) for i in rng.permutation(np.arange(1, n + 1))] + ['-1']
    np.testing.assert_array_equal(
        decode_siim_rles([(f'row {i}', text) for i, text in enumerate(rows)], 37, 23), mask)
    with pytest.raises(ValueError, match=r'^row 1: .*overruns'):  # names its own row
        decode_siim_rles([('row 0', '-1'), ('row 1', '5 900')], 37, 23)


@pytest.mark.parametrize('text,message', [
    ('5 3', None),  # ends exactly at the last pixel: fine
    ('5 4', 'overruns the image: a run ends at pixel 9'),
    ('1 2 3 3', 'overruns'),  # the relative offsets add up past the end
    ('1 2 3', 'odd number'),
    ('1 x', 'whole numbers'),
    ('-2 3', 'offset must be >= 0'),
    ('1 0', 'length must be > 0'),
])
def test_siim_errors(text, message):
    if message is None:
        assert decode_siim_rle(text, 2, 4).sum() == 3
    else:
        with pytest.raises(ValueError, match=message):
            decode_siim_rle(text, 2, 4, what='train-rle.csv line 3')


def test_chexmask_hand_made_and_round_trip():
    # H=2, W=5, row-major, 1-indexed: start 2 -> (0, 1); start 9 -> (1, 3)
    np.testing.assert_array_equal(decode_chexmask_rle('2 3 9 1', 2, 5),
                                  [[0, 1, 1, 1, 0], [0, 0, 0, 1, 0]])
    rng = np.random.default_rng(1)
    mask = (rng.random((19, 31)) > 0.6).astype(np.uint8)
    np.testing.assert_array_equal(decode_chexmask_rle(chexmask_rle(mask), 19, 31), mask)
    assert not decode_chexmask_rle('', 3, 3).any()


@pytest.mark.parametrize('text,message', [
    ('0 2', '1-indexed'), ('9 3', 'overruns'), ('1 2 3', 'odd number')])
def test_chexmask_errors(text, message):
    with pytest.raises(ValueError, match=message):
        decode_chexmask_rle(text, 2, 5)
