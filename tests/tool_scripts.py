"""Scripts of ``tools/`` as modules, for the tests (``tools/`` holds scripts, not one
package): ``train = load_tool('train')``, ``load_tool('analysis_tools/forgetting')``,
``load_converter('foundation_x_to_fxmm')``. Importable from every test (the root conftest
puts tests/ on ``sys.path``)."""
import importlib.util
import os.path as osp
import sys
from types import ModuleType

TOOLS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools')


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (``name`` may hold a sub-folder) as a module named
    ``fxmm_tool_<name>``; the script's folder is on ``sys.path`` while it runs, as when it is
    started from the command line (tools/test.py imports train.py)."""
    path = osp.join(TOOLS, f'{name}.py')
    spec = importlib.util.spec_from_file_location(
        'fxmm_tool_' + name.replace('/', '_'), path)
    module = importlib.util.module_from_spec(spec)
    folder = osp.dirname(path)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
    return module


def load_converter(name: str) -> ModuleType:
    """Import ``tools/model_converters/<name>.py``."""
    return load_tool(f'model_converters/{name}')
