"""Polygon rasterisation, box checks, patient-level splits and table reading."""
import gzip

import numpy as np
import pytest

from data_converters.masks import check_box, mask_extent, rasterise_polygons
from data_converters.report import ConversionReport
from data_converters.splits import assign_split, check_fractions
from data_converters.tables import read_table
from fixtures import rect_mask


def test_polygons_cover_pixel_centres_inclusive():
    rect = rasterise_polygons([[[2, 3], [6, 3], [6, 7], [2, 7]]], 10, 9)
    np.testing.assert_array_equal(rect, rect_mask(10, 9, (2, 3, 6, 7)))
    lshape = [[1, 1], [7, 1], [7, 3], [3, 3], [3, 8], [1, 8]]
    np.testing.assert_array_equal(rasterise_polygons([lshape], 10, 9),
                                  rect_mask(10, 9, (1, 1, 7, 3), (1, 1, 3, 8)))
    # two polygons: their union; fractional vertices go to the nearest pixel centre
    union = rasterise_polygons([[[0, 0], [1, 0], [1, 1], [0, 1]],
                                [[0.5, 0], [3.4, 0], [3.4, 1.6], [0.5, 1.6]]], 4, 6)
    np.testing.assert_array_equal(union, rect_mask(4, 6, (0, 0, 3, 1), (1, 2, 3, 2)))
    assert rasterise_polygons([[[0, 0], [3.6, 0], [3.6, 1], [0, 1]]], 4, 6)[0, 4] == 1


@pytest.mark.parametrize('polygon,message', [
    ([[1, 1], [2, 2]], '>= 3'), ([[1, 1], [2, 2], [np.nan, 3]], 'non-finite'),
    ([[1, 1, 1], [2, 2, 2], [3, 3, 3]], '>= 3 \\(x, y\\)')])
def test_bad_polygons(polygon, message):
    with pytest.raises(ValueError, match='poly\\[0\\].*' + message):
        rasterise_polygons([polygon], 5, 5, what='poly')


def test_check_box_and_extent():
    assert check_box([-1, 0, 10, 11.5], 10, 10) == [0, 0, 10, 10]
    with pytest.raises(ValueError, match='outside'):
        check_box([0, 0, 20, 5], 10, 10)
    with pytest.raises(ValueError, match='x1 < x2'):
        check_box([5, 0, 5, 5], 10, 10)
    for box in (None, [1, None, 3, 4], [1, 2, 3], ['a', 2, 3, 4]):  # e.g. JSON nulls
        with pytest.raises(ValueError, match=r'^f.json\[3\] box .*needs four numbers'):
            check_box(box, 10, 10, 'f.json[3] box')
    assert mask_extent(rect_mask(6, 6, (1, 2, 3, 4))) == [1, 2, 4, 5]
    assert mask_extent(np.zeros((3, 3))) is None


def test_patient_split_deterministic_grouped_and_proportional():
    patients = [f'patient{i}' for i in range(4000)]
    splits = [assign_split(p, None, 0, 0.1, 0.2) for p in patients]
    assert splits == [assign_split(p, None, 0, 0.1, 0.2) for p in patients]
    counts = {s: splits.count(s) / len(splits) for s in ('train', 'val', 'test')}
    assert abs(counts['test'] - 0.2) < 0.03 and abs(counts['val'] - 0.1) < 0.03
    other_seed = [assign_split(p, None, 1, 0.1, 0.2) for p in patients]
    assert sum(a != b for a, b in zip(splits, other_seed)) > 1000
    trainval = {assign_split(p, 'trainval', 0, 0.1, 0.2) for p in patients}
    assert trainval == {'train', 'val'}
    assert assign_split('x', 'test', 0, 0.1, 0.2) == 'test'
    with pytest.raises(ValueError, match='val \\+ test < 1'):
        check_fractions(0.6, 0.5)


def test_read_table_real_world_csv(tmp_path):
    path = tmp_path / 't.csv.gz'
    text = ('\ufeffImageId, EncodedPixels,Report\n'
            'a, -1,"line one,\nline ""two"""\n'
            'b, 1 2\n'
            '\n'
            'c, 3 4,ok\n')
    with gzip.open(path, 'wt', encoding='utf-8') as f:
        f.write(text)
    report = ConversionReport('t')
    rows = list(read_table(str(path), ['ImageId', 'EncodedPixels'], report, 'ImageId'))
    assert rows == [(2, dict(ImageId='a', EncodedPixels='-1', Report='line one,\nline "two"')),
                    (6, dict(ImageId='c', EncodedPixels='3 4', Report='ok'))]
    assert report.skipped == {'b': 't.csv.gz line 4: malformed row with 2 fields, the header '
                                   'has 3'}
    with pytest.raises(ValueError, match="missing column\\(s\\) \\['Target'\\]"):
        list(read_table(str(path), ['Target'], report))


def test_read_table_trailing_empty_fields(tmp_path):
    """NIH's box table: the header ends in ',,,', rows may or may not; a row short of a named
    column or with a value past the header is still malformed."""
    path = tmp_path / 'BBox_List_2017.csv'
    path.write_text('Image Index,Finding Label,Bbox [x,y,w,h],,,\n'
                    'a.png,Mass,1,2,3,4\n'
                    'b.png,Mass,1,2,3,4,,,\n'
                    'c.png,Mass,1,2,3,\n'
                    'd.png,Mass,1,2,3\n'
                    'e.png,Mass,1,2,3,4,,x,\n')
    report = ConversionReport('t')
    rows = list(read_table(str(path), ['Image Index'], report, 'Image Index'))
    assert [(line, row['Image Index'], row['h]']) for line, row in rows] == [
        (2, 'a.png', '4'), (3, 'b.png', '4'), (4, 'c.png', '')]
    assert list(rows[0][1]) == ['Image Index', 'Finding Label', 'Bbox [x', 'y', 'w', 'h]']
    assert report.skipped == {
        'd.png': 'BBox_List_2017.csv line 5: malformed row with 5 fields, the header has 6',
        'e.png': 'BBox_List_2017.csv line 6: malformed row with 9 fields, the header has 6'}
