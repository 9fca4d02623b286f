"""``predictions.csv`` of :class:`~fxmm.apis.FXInferencer`: one row per image x dataset x item
(the layout is in :mod:`fxmm.apis.inferencer`'s docstring)."""
import csv
import io

#: columns of predictions.csv
CSV_FIELDS = ('img_path', 'dataset', 'task', 'class', 'score', 'x1', 'y1', 'x2', 'y2',
              'area_px', 'error')


def predictions_to_csv(output: dict) -> str:
    """The rows of predictions.csv (columns :data:`CSV_FIELDS`, see :mod:`fxmm.apis.inferencer`).

    Args:
        output (dict): ``{'predictions': [...], 'errors': [...]}`` of
            :class:`~fxmm.apis.FXInferencer`.

    Returns:
        str: CSV text with a header line.
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator='\n')
    writer.writeheader()
    for result in output['predictions']:
        for name, preds in result['datasets'].items():
            row = dict(img_path=result['img_path'], dataset=name)
            for cls_name, prob in preds.get('cls', {}).items():
                writer.writerow(dict(row, task='cls', **{'class': cls_name}, score=prob))
            for box in preds.get('loc', []):
                x1, y1, x2, y2 = box['bbox']
                writer.writerow(dict(row, task='loc', **{'class': box['label']},
                                     score=box['score'], x1=x1, y1=y1, x2=x2, y2=y2))
            for seg_name, mask in preds.get('seg', {}).items():
                writer.writerow(dict(row, task='seg', **{'class': seg_name},
                                     area_px=mask['area_px']))
    for error in output['errors']:
        writer.writerow(dict(img_path=error['img_path'], error=error['error']))
    return buffer.getvalue()
