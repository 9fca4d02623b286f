"""Register every fxmm module and set the ``fxmm`` default scope (for scripts and tests)."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import fxmm's sub-packages so their modules register, and the libraries fxmm borrows.

    Configs do not need this (``default_scope='fxmm'`` plus the registries' ``locations``
    import lazily); notebooks, scripts and tests do.

    Args:
        init_default_scope (bool): make ``fxmm`` the current default scope. If another scope
            is current, a new ``fxmm`` scope instance is created and a warning says so.
    """
    import mmdet.models  # noqa: F401  DINO parts
    import mmpretrain.models  # noqa: F401  Swin
    import mmseg.models  # noqa: F401  UperNet parts

    import fxmm.datasets  # noqa: F401
    import fxmm.engine  # noqa: F401
    import fxmm.evaluation  # noqa: F401
    import fxmm.models  # noqa: F401

    if not init_default_scope:
        return
    never_created = (DefaultScope.get_current_instance() is None
                     or not DefaultScope.check_instance_created('fxmm'))
    if never_created:
        DefaultScope.get_instance('fxmm', scope_name='fxmm')
        return
    current = DefaultScope.get_current_instance()
    if current.scope_name != 'fxmm':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "fxmm"; '
                      '`register_all_modules` makes a new default scope "fxmm".')
        stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S.%f')
        DefaultScope.get_instance(f'fxmm-{stamp}', scope_name='fxmm')
