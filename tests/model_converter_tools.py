"""The scripts of ``tools/model_converters/`` as modules, for the tests (tools/ is not a
package): ``fx_tool = load_converter('foundation_x_to_fxmm')``. Importable from every test
(the root conftest puts tests/ on ``sys.path``)."""
import importlib.util
import os.path as osp
from types import ModuleType

CONVERTERS = osp.join(osp.dirname(osp.abspath(__file__)), '..', 'tools', 'model_converters')


def load_converter(name: str) -> ModuleType:
    """Import ``tools/model_converters/<name>.py``."""
    spec = importlib.util.spec_from_file_location(name, osp.join(CONVERTERS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
