"""Clearer errors for the most common user failures: a ``type`` missing from the registry,
and an argument its class does not take."""
import difflib
import inspect
import re
from typing import List

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


def init_parameters(cls: type) -> List[str]:
    """The keyword arguments ``cls(...)`` can take: the named parameters of every
    ``__init__`` in its MRO (a subclass often passes ``**kwargs`` on to its base).

    Args:
        cls (type): a class.

    Returns:
        list[str]: parameter names, without ``self`` and ``*args``/``**kwargs``.
    """
    names = []
    for klass in cls.__mro__[:-1]:  # not `object`
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # builtins without a signature
            continue
        names += [p.name for p in params
                  if p.name != 'self' and p.name not in names
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names


def unknown_argument_hint(cls: type, arg: str) -> str:
    """Say which argument of ``cls`` the unknown ``arg`` was probably meant to be.

    Args:
        cls (type): the class that was given ``arg``.
        arg (str): the argument it does not take, e.g. ``'bacth_size'``.

    Returns:
        str: ``"did you mean 'batch_size'?"`` when a parameter is close, else the list of
        the parameters ``cls`` takes.
    """
    params = init_parameters(cls)
    close = difflib.get_close_matches(arg, params, n=1, cutoff=0.6)
    if close:
        return f'did you mean {close[0]!r}?'
    return f'{cls.__name__} takes {params}'


# Python's message for a call with a keyword the callee does not take
_UNEXPECTED_KWARG = re.compile(r"got an unexpected keyword argument '(\w+)'")


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


def _class_of(type_name, registry: Registry):
    """The class ``type_name`` (a str or a class) stands for, None when it is not a class."""
    cls = registry.get(type_name) if isinstance(type_name, str) else type_name
    return cls if inspect.isclass(cls) else None


def hinted_build(parent: Registry):
    """Wrap ``parent.build_func``: borrowed types build in their own scope, a missing
    type's KeyError carries a hint, and so does the TypeError of an argument the class
    does not take (``MultiTaskSampler(bacth_size=8)`` -> ``did you mean 'batch_size'?``).

    Only an argument written in ``cfg`` (or given as a default argument) is hinted;
    a TypeError raised deeper inside the class is left as it is.
    """

    def build(cfg, *args, registry: Registry, **kwargs):
        type_name = cfg.get('type') if hasattr(cfg, 'get') else None
        try:
            return parent.build_func(_scoped(cfg), *args, registry=registry, **kwargs)
        except TypeError as err:
            match = _UNEXPECTED_KWARG.search(str(err))
            cls = _class_of(type_name, registry) if match and 'hint:' not in str(err) else None
            if cls is None:
                raise
            arg = match.group(1)
            default_args = kwargs.get('default_args', args[0] if args else None) or {}
            if (arg not in cfg and arg not in default_args) or arg in init_parameters(cls):
                raise
            raise TypeError(f'{err} hint: {unknown_argument_hint(cls, arg)}') from err
        except KeyError as err:
            msg = str(err)
            if not isinstance(type_name, str) or 'hint:' in msg or \
                    f'{type_name.rpartition(".")[2]} is not in the' not in msg:
                raise
            hint = missing_type_hint(type_name, registry)
            raise KeyError(f'{msg.strip(chr(34))} hint: {hint}') from err

    return build
