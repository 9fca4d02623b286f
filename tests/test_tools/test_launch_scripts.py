"""The launch scripts hand every option over whole, spaces included (``--cfg-options
"a=[1, 2]"``): checked with stand-ins for ``python`` and ``srun`` that record their
arguments."""
import json
import os
import os.path as osp
import stat
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECORD = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ['ARGS_OUT'], 'a') as f:
    f.write(json.dumps(sys.argv[1:]) + '\\n')
"""
# srun's stand-in drops its own options and runs the command it is given
SRUN = """#!/usr/bin/env bash
while [[ "$1" != python ]]; do shift; done
"$@"
"""


def _stand_in(folder, name, text):
    path = osp.join(folder, name)
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)


@pytest.mark.parametrize('script, args, expected_tail', [
    ('dist_train.sh', ['cfg.py', '2'], ['cfg.py', '--launcher', 'pytorch']),
    ('dist_test.sh', ['cfg.py', 'c.pth', '2'], ['cfg.py', 'c.pth', '--launcher', 'pytorch']),
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'work dir'],
     ['cfg.py', '--work-dir=work dir', '--launcher=slurm']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py', 'c.pth'], ['cfg.py', 'c.pth', '--launcher=slurm']),
])
def test_options_with_spaces_stay_whole(tmp_path, script, args, expected_tail):
    bin_dir = str(tmp_path / 'bin')
    os.makedirs(bin_dir)
    _stand_in(bin_dir, 'python', RECORD)
    _stand_in(bin_dir, 'srun', SRUN)
    out = tmp_path / 'args.jsonl'
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', ARGS_OUT=str(out))
    options = ['--cfg-options', 'model.x=[1, 2]', 'name=a b']
    subprocess.run(['bash', osp.join(ROOT, 'tools', script)] + args + options, env=env,
                   check=True, capture_output=True)
    argv = json.loads(out.read_text().splitlines()[-1])
    assert argv[-len(expected_tail) - len(options):] == expected_tail + options
