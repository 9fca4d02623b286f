"""Imports run one way: nothing in the ``fxmm`` package reaches up into ``tools/`` or
``data_converters/`` (which are not installed with it), by an import statement or by a path
to a file there.

A reach is an ``import`` / ``from ... import`` of those top-level names, a string naming them
as a module (``'tools.x'``, for ``importlib``), or a path string into them (``'tools'`` or
``'data_converters'`` as a path component of a string without spaces, as ``osp.join`` and
``spec_from_file_location`` take them). Docstrings and messages (strings with spaces) may
name the tools a user runs.
"""
import ast
import os.path as osp
import re
from pathlib import Path
from typing import List

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / 'fxmm'
UPPER = ('tools', 'data_converters')
_MODULE = re.compile(r'^(%s)(\.|$)' % '|'.join(UPPER))
_PATH = re.compile(r'(^|[/\\])(%s)([/\\]|$)' % '|'.join(UPPER))


def _docstrings(tree: ast.AST) -> set:
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return {id(n.body[0].value) for n in nodes
            if n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}


def upward_reaches(source: str) -> List[str]:
    """What in ``source`` (one module's text) reaches into ``tools/`` or ``data_converters/``:
    ``'line N: ...'`` entries, none for a module that keeps to the library."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ''] if node.level == 0 else []
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in skip and ' ' not in node.value):
            if _MODULE.match(node.value) or _PATH.search(node.value):
                found.append(f'line {node.lineno}: string {node.value!r}')
            continue
        else:
            continue
        found += [f'line {node.lineno}: import {n}' for n in names if _MODULE.match(n)]
    return found


@pytest.mark.parametrize('source', [
    'import tools.benchmarks\n',
    'from data_converters.synthetic import generate_phantom_datasets\n',
    'from tools import benchmarks as b\n',
    "import importlib\nm = importlib.import_module('data_converters.synthetic')\n",
    "import os.path as osp\nPATH = osp.join(ROOT, 'tools', 'model_converters', 'x.py')\n",
    "SCRIPT = 'tools/model_converters/fxmm_to_mmdet.py'\n",
    "def f(root):\n    return f'{root}/data_converters/synthetic.py'\n",
])
def test_the_check_finds_each_kind_of_reach(source):
    assert upward_reaches(source)


@pytest.mark.parametrize('source', [
    '"""Written by ``tools/prepare_images.py``; see data_converters/."""\n',
    "raise RuntimeError('run tools/prepare_images.py first')\n",
    'from fxmm.apis.export_configs import dino_config\n',
    'from .tools import helper\n',  # a relative import inside the package
    "name = 'fxmm.benchmark.lock'\n",
])
def test_the_check_lets_docs_messages_and_the_library_through(source):
    assert upward_reaches(source) == []


def test_no_module_of_the_package_reaches_into_tools_or_data_converters():
    modules = sorted(PACKAGE.rglob('*.py'))
    assert len(modules) > 50  # the whole package, not an empty glob
    reaches = {osp.relpath(path, PACKAGE.parent): upward_reaches(path.read_text())
               for path in modules}
    assert {path: found for path, found in reaches.items() if found} == {}
