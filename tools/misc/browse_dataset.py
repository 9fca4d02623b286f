"""Save what the training pipeline feeds the model, with its boxes/masks/labels drawn.

``python tools/misc/browse_dataset.py configs/foundation_x_demo.py --output-dir work_dirs/browse``
writes ``<output-dir>/<dataset>.<task>/<index>.png`` for the first ``--num`` samples of every
(dataset, task) pair of the chosen split, after augmentation.
"""
import argparse
import os
import os.path as osp

import cv2
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from fxmm.registry import DATASETS
from fxmm.utils import register_all_modules
from fxmm.visualization import draw_data_sample


def parse_args():
    parser = argparse.ArgumentParser(description='Browse a dataset after its pipeline')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--output-dir', required=True, help='where to save the PNGs')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--num', type=int, default=4, help='samples per (dataset, task) pair')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value pairs')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'fxmm'))
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    starts = [0, *dataset.cumulative_sizes[:-1]]
    saved = 0
    for name, sub, start in zip(dataset.pair_names, dataset.datasets, starts):
        out_dir = osp.join(args.output_dir, name)
        os.makedirs(out_dir, exist_ok=True)
        for local in range(min(args.num, len(sub))):
            packed = dataset[start + local]
            sample = packed['data_samples']
            img = packed['inputs'][0].numpy()
            canvas = draw_data_sample(img, sample, sub.metainfo)
            path = osp.join(out_dir, f'{local:03d}.png')
            cv2.imwrite(path, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
            saved += 1
    print(f'saved {saved} images to {args.output_dir}')


if __name__ == '__main__':
    main()
