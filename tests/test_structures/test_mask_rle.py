import numpy as np
import pytest
from pycocotools import mask as mask_util

from fxmm.structures.mask_rle import (decode_mask, decode_mask_sampled, encode_mask,
                                     masks_to_boxes, rle_run_lengths)


def test_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(50):
        height, width = rng.integers(1, 80, size=2)
        mask = rng.random((height, width)) < rng.random()
        rle = encode_mask(mask)
        assert rle['size'] == [height, width]
        assert isinstance(rle['counts'], str)
        decoded = decode_mask(rle, height, width)
        assert decoded.dtype == np.uint8 and decoded.shape == (height, width)
        np.testing.assert_array_equal(decoded, mask)
        runs = rle_run_lengths(rle)
        assert runs.sum() == height * width
        assert runs[1::2].sum() == mask.sum()


def test_sampled_decoding_equals_indexing_the_whole_mask():
    rng = np.random.default_rng(1)
    for trial in range(60):
        height, width = (int(v) for v in rng.integers(1, 50, size=2))
        mask = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        if trial % 4 == 0:
            mask[:] = trial % 8 == 0  # all 0 / all 1: one run, or a first run of 0 zeros
        rows = np.sort(rng.integers(0, height, rng.integers(1, 30)))  # repeats: upsampling
        cols = rng.integers(0, width, rng.integers(1, 30))
        sampled = decode_mask_sampled(encode_mask(mask), rows, cols, height, width)
        assert sampled.dtype == np.uint8 and sampled.flags.c_contiguous
        np.testing.assert_array_equal(sampled, mask[rows][:, cols])
    with pytest.raises(ValueError, match='does not match the image size'):
        decode_mask_sampled(encode_mask(mask), rows[:1], cols[:1], height + 1, width)


def test_large_runs_use_the_difference_coding():
    # long runs need several characters and, from the third run on, differences that can be
    # negative: the checked run lengths must be pycocotools' own
    mask = np.zeros((300, 200), dtype=np.uint8)
    mask[10:290, 5:150] = 1
    mask[::7, ::3] = 1
    rle = encode_mask(mask)
    runs = rle_run_lengths(rle, 300, 200)
    assert runs[1::2].sum() == int(mask_util.area(mask_util.encode(np.asfortranarray(mask))))
    flat = mask.ravel(order='F')
    np.testing.assert_array_equal(np.repeat(np.arange(len(runs)) % 2, runs), flat)


def test_empty_and_full_masks():
    empty = encode_mask(np.zeros((7, 5), dtype=bool))
    full = encode_mask(np.ones((7, 5), dtype=np.uint8))
    assert decode_mask(empty).sum() == 0
    assert decode_mask(full).sum() == 35
    np.testing.assert_array_equal(rle_run_lengths(empty), [35])
    np.testing.assert_array_equal(rle_run_lengths(full), [0, 35])


def test_encode_rejects_non_binary_or_wrong_rank():
    with pytest.raises(ValueError, match='binary'):
        encode_mask(np.array([[0, 2]]))
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        encode_mask(np.zeros((2, 3, 4)))


def test_size_mismatch_names_both_sizes():
    rle = encode_mask(np.ones((4, 5), dtype=bool))
    with pytest.raises(ValueError, match=r'RLE size \[4, 5\] does not match the image size '
                                         r'\[4, 6\]'):
        decode_mask(rle, height=4, width=6)
    with pytest.raises(ValueError, match='does not match'):
        decode_mask(rle, height=5)


@pytest.mark.parametrize('rle, match', [
    ({'size': [4, 5], 'counts': '9'}, 'cover 9 pixels, but size \\[4, 5\\] has 20'),
    ({'size': [4, 5], 'counts': '0P1'}, 'cover 32 pixels'),
    ({'size': [4, 5], 'counts': ''}, 'cover 0 pixels'),
    ({'size': [4, 5], 'counts': 'x2'}, "invalid character b'x' at position 0"),
    ({'size': [4, 5], 'counts': '4P'}, 'truncated'),
    ({'size': [4, 5], 'counts': '4\u00e9'}, 'non-ASCII'),
    ({'size': [4, 5], 'counts': [20]}, 'compressed str'),
    ({'size': [4], 'counts': '<'}, 'size must be \\[height, width\\]'),
    ({'size': [4, 5]}, 'keys \\["size"\\]|keys \\[\'size\'\\]'),
    ('not a dict', 'got str'),
])
def test_bad_rle_raises_value_error_saying_what(rle, match):
    with pytest.raises(ValueError, match=match):
        decode_mask(rle)


def test_difference_coded_runs_match_pycocotools():
    # runs from the fourth on are differences to the run two places before: 'O' codes -1
    rle = {'size': [1, 12], 'counts': '235O'}
    runs = rle_run_lengths(rle)
    assert runs.tolist() == [2, 3, 5, 2]
    np.testing.assert_array_equal(decode_mask(rle)[0], np.repeat([0, 1, 0, 1], runs))


def test_negative_run_is_rejected():
    # 'L' codes -4, so the fourth run is 3 - 4 = -1 although the runs add up to 9
    with pytest.raises(ValueError, match=r'negative run length \(-1\)'):
        rle_run_lengths({'size': [1, 9], 'counts': '235L'})


def test_masks_to_boxes_components_and_connectivity():
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[1:3, 1:4] = 1       # component A
    mask[3, 4] = 1           # touches A only at a corner
    mask[4:6, 6:8] = 1       # component B
    boxes8 = masks_to_boxes(mask)
    np.testing.assert_array_equal(boxes8, [[1, 1, 5, 4], [6, 4, 8, 6]])
    boxes4 = masks_to_boxes(mask, connectivity=4)
    np.testing.assert_array_equal(boxes4, [[1, 1, 4, 3], [4, 3, 5, 4], [6, 4, 8, 6]])
    assert boxes8.dtype == np.float32
    assert masks_to_boxes(np.zeros((3, 3))).shape == (0, 4)
    with pytest.raises(ValueError, match='connectivity'):
        masks_to_boxes(mask, connectivity=6)
