"""fxmm's registries, children of mmengine's (the mmyolo pattern).

Each registry names the sub-package holding its classes (``locations``), so that
``default_scope = 'fxmm'`` in a config is enough for ``Runner.from_cfg`` to find every fxmm
module; other libraries' modules are used as ``type='mmdet.DINOHead'`` etc.

A type that is not found raises :class:`KeyError` with a hint: the scopes that do register it
(``'mmdet.DINOHead'``) or the closest registered names (:mod:`.hints`). The bottom layer of
fxmm: it imports nothing else of fxmm.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

from .hints import hinted_build

# manage all kinds of runners like `Runner`
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['fxmm.engine.runner'])
# manage all kinds of loops like the cyclic multi-task train loop
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['fxmm.engine.runner'])
# manage all kinds of hooks like `LockReleaseHook`
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['fxmm.engine.hooks'])

# manage data-related modules
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, locations=['fxmm.datasets'],
    build_func=hinted_build(MMENGINE_DATASETS))
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['fxmm.datasets.samplers'],
    build_func=hinted_build(MMENGINE_DATA_SAMPLERS))
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['fxmm.datasets.transforms'],
    build_func=hinted_build(MMENGINE_TRANSFORMS))

# manage all kinds of modules inheriting `nn.Module`
MODELS = Registry(
    'model', parent=MMENGINE_MODELS, locations=['fxmm.models'],
    build_func=hinted_build(MMENGINE_MODELS))
# manage all kinds of model wrappers like 'MMDistributedDataParallel'
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS,
                          locations=['fxmm.models'])
# manage all kinds of weight initialization modules like `Uniform`
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS,
                               locations=['fxmm.models'])

# manage all kinds of optimizers like `SGD` and `Adam`
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['fxmm.engine'])
# manage optimizer wrappers
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          locations=['fxmm.engine'])
# manage constructors that customize the optimization hyperparameters
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      locations=['fxmm.engine'])
# manage all kinds of parameter schedulers like `MultiStepLR`
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS,
                            locations=['fxmm.engine'])

# manage all kinds of metrics
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, locations=['fxmm.evaluation'],
    build_func=hinted_build(MMENGINE_METRICS))
# manage evaluator
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, locations=['fxmm.evaluation'])

# manage task-specific modules like anchor generators and box coders
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, locations=['fxmm.models'])

# manage visualizer
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS,
                       locations=['fxmm.visualization'])
# manage visualizer backend
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS,
                       locations=['fxmm.visualization'])
# manage logprocessor
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS,
                          locations=['fxmm.engine'])
