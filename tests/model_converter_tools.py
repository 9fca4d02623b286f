"""Scripts of ``tools/`` as modules, for the tests (tools/ is not a package):
``fx_tool = load_converter('foundation_x_to_fxmm')``, ``load_module(<path of a script>)``.
Importable from every test (the root conftest puts tests/ on ``sys.path``)."""
import importlib.util
import os.path as osp
from types import ModuleType

CONVERTERS = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'tools', 'model_converters')


def load_module(path: str) -> ModuleType:
    """Import the script at ``path`` as a module named after its file."""
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_converter(name: str) -> ModuleType:
    """Import ``tools/model_converters/<name>.py``."""
    return load_module(osp.join(CONVERTERS, f'{name}.py'))
