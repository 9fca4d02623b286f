"""Clearer errors for the most common user failure: a ``type`` missing from the registry."""
import difflib

from mmengine.registry import Registry

# OpenMMLab scopes fxmm configs borrow modules from.
KNOWN_SCOPES = ('mmdet', 'mmseg', 'mmpretrain', 'mmengine')


def _registry_of(scope: str, root: Registry):
    """The registry of ``scope`` that corresponds to ``root`` (a mmengine root registry)."""
    for child in root.children.values():
        if child.scope == scope:
            return child
    return None


def missing_type_hint(type_name: str, registry: Registry) -> str:
    """Say where ``type_name`` can be found, or which registered names are close to it.

    Args:
        type_name (str): the ``type`` string of the config, e.g. ``'DINOHead'``.
        registry (Registry): the registry the build was attempted in.

    Returns:
        str: a one-line hint, empty when nothing useful can be said.
    """
    scope, _, name = type_name.rpartition('.')
    root = registry
    while root.parent is not None:
        root = root.parent
    # import other scopes' registries so their `locations` can be searched
    found, candidates = [], set(registry.module_dict)
    for other in KNOWN_SCOPES:
        child = _registry_of(other, root) if other != 'mmengine' else root
        if child is None:
            try:
                __import__(f'{other}.registry')
            except ImportError:
                continue
            child = _registry_of(other, root)
        if child is None:
            continue
        child.import_from_location()
        if name in child.module_dict and other != scope:
            found.append(other)
        candidates.update(child.module_dict)
    if found:
        return (f"'{name}' is registered in scope(s) {found}: write "
                f"type='{found[0]}.{name}' (or add `_scope_='{found[0]}'`), or make sure "
                f"`custom_imports` imports the package that defines it.")
    close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
    hint = f"did you mean {close}? " if close else ''
    return (hint + f"If '{name}' is your own module, import it with "
            f"`custom_imports = dict(imports=['your.module'], allow_failed_imports=False)`.")


def _scoped(cfg):
    """``type='mmdet.X'`` -> ``type='X', _scope_='mmdet'``.

    mmengine resolves a ``scope.Name`` type but builds it under the *current* default scope,
    so the borrowed module's own sub-modules (e.g. the losses mmdet's DINOHead builds) would be
    looked up in fxmm and not found. Switching the scope for the whole build fixes that.
    """
    type_name = cfg.get('type') if hasattr(cfg, 'get') else None
    if not isinstance(type_name, str) or '_scope_' in cfg:
        return cfg
    scope, _, name = type_name.rpartition('.')
    if scope not in KNOWN_SCOPES or scope == 'mmengine':
        return cfg
    cfg = cfg.copy()
    cfg.update(type=name, _scope_=scope)
    return cfg


def hinted_build(parent: Registry):
    """Wrap ``parent.build_func``: borrowed types build in their own scope, and a missing
    type's KeyError carries a hint."""

    def build(cfg, *args, registry: Registry, **kwargs):
        type_name = cfg.get('type') if hasattr(cfg, 'get') else None
        try:
            return parent.build_func(_scoped(cfg), *args, registry=registry, **kwargs)
        except KeyError as err:
            msg = str(err)
            if not isinstance(type_name, str) or 'hint:' in msg or \
                    f'{type_name.rpartition(".")[2]} is not in the' not in msg:
                raise
            hint = missing_type_hint(type_name, registry)
            raise KeyError(f'{msg.strip(chr(34))} hint: {hint}') from err

    return build
