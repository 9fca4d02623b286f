"""fxmm: Foundation X (multi-dataset, multi-task chest X-ray) as an OpenMMLab extension."""
from .utils.checkpoint_compat import allow_mmengine_checkpoints
from .version import __version__

# mmengine's own checkpoints must load under torch's weights_only default (resume, load_from)
allow_mmengine_checkpoints()

__all__ = ['__version__']
