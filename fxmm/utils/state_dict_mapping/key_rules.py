"""Renaming state-dict keys by templates: :class:`KeyRule` (one template pair) and
:class:`KeyMapper` (a list of them applied to a state dict), e.g.
``KeyRule('layers.{i}.blocks.{j}.attn.qkv.{p}', 'stages.{i}.blocks.{j}.attn.w_msa.qkv.{p}')``.
Inverted, a mapper writes a state dict in the source layout (the tests use it).
"""
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor

StateDict = Dict[str, Tensor]


class ConversionError(RuntimeError):
    """A checkpoint cannot be converted as asked (the message says why and what to pass)."""


_FIELD = re.compile(r'\{(\w+)(\*?)\}')


def _template_regex(template: str) -> re.Pattern:
    """``'a.{i}.b.{rest*}'`` -> a regex with groups ``i`` (one key segment) and ``rest``."""
    parts, last = [], 0
    for m in _FIELD.finditer(template):
        parts.append(re.escape(template[last:m.start()]))
        parts.append(f'(?P<{m.group(1)}>{".+" if m.group(2) else "[^.]+"})')
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile(''.join(parts))


def _template_fields(template: str) -> set:
    return {m.group(1) for m in _FIELD.finditer(template)}


class KeyRule:
    """One renaming template between a source and a target state-dict layout.

    ``{name}`` in a template stands for one key segment (no ``.``), ``{name*}`` for one or
    more; the target template reuses the source's fields. A rule without a target (``dst``
    None) consumes matching keys without writing them (buffers the model rebuilds, modules
    the source never used), ``why`` saying so in the report.

    Args:
        src (str): Source key template.
        dst (str, optional): Target key template; None drops the key.
        fn (Callable, optional): Applied to the value (e.g. a weight permutation).
        inverse_fn (Callable, optional): Undoes ``fn``, for :meth:`inverse`.
        why (str): Why a dropped key is dropped (shown in the report). Defaults to ''.
    """

    def __init__(self,
                 src: str,
                 dst: Optional[str],
                 fn: Optional[Callable[[Tensor], Tensor]] = None,
                 inverse_fn: Optional[Callable[[Tensor], Tensor]] = None,
                 why: str = ''):
        if dst is not None and not _template_fields(dst) <= _template_fields(src):
            raise ValueError(f'KeyRule {src!r} -> {dst!r}: the target uses fields the source '
                             'does not have')
        self.src, self.dst, self.fn, self.inverse_fn, self.why = src, dst, fn, inverse_fn, why
        self._regex = _template_regex(src)

    def match(self, key: str) -> Optional[dict]:
        """The template fields of ``key``, or None if the rule does not apply to it."""
        m = self._regex.fullmatch(key)
        return m.groupdict() if m else None

    def target(self, fields: dict) -> str:
        """The target key for the matched ``fields``."""
        return _FIELD.sub(lambda m: fields[m.group(1)], self.dst)

    def inverse(self) -> Optional['KeyRule']:
        """The rule from target back to source (None for a dropping rule)."""
        if self.dst is None:
            return None
        if _template_fields(self.src) != _template_fields(self.dst):
            raise ValueError(f'KeyRule {self.src!r} -> {self.dst!r} cannot be inverted: the '
                             'target drops fields of the source')
        if self.fn is not None and self.inverse_fn is None:
            raise ValueError(f'KeyRule {self.src!r} -> {self.dst!r} has no inverse_fn')
        return KeyRule(self.dst, self.src, self.inverse_fn, self.fn)

    def __repr__(self) -> str:
        return f'KeyRule({self.src!r} -> {self.dst!r})'


@dataclass
class MappedStateDict:
    """The result of :meth:`KeyMapper.convert`.

    Attributes:
        state_dict (OrderedDict): The converted tensors, by target key.
        sources (dict): Target key -> the source key it came from.
        unused (list[str]): Source keys no rule matched.
        dropped (dict): Source key -> why it was consumed without being written.
    """
    state_dict: 'OrderedDict[str, Tensor]'
    sources: Dict[str, str]
    unused: List[str]
    dropped: Dict[str, str]


class KeyMapper:
    """Apply :class:`KeyRule` s to a state dict.

    Every rule matching a key applies, so one source tensor may fill several targets (a
    module shared in the source, copied per dataset in the target), except that a dropping
    rule (no target) wins over all others: it excludes the key. Two source keys writing the
    same target must hold equal tensors (aliases of one module), else a
    :class:`ConversionError` names both.

    Args:
        rules (Sequence[KeyRule]): The mapping.
    """

    def __init__(self, rules: Sequence[KeyRule]):
        self.rules = list(rules)

    def convert(self, state_dict: StateDict) -> MappedStateDict:
        """Rename ``state_dict`` by the rules.

        Args:
            state_dict (dict[str, Tensor]): In the source layout.

        Returns:
            MappedStateDict: The converted tensors and what was left over.
        """
        out, sources, unused, dropped = OrderedDict(), {}, [], {}
        for key, value in state_dict.items():
            hits = [(rule, fields) for rule in self.rules
                    for fields in [rule.match(key)] if fields is not None]
            drops = [rule for rule, _ in hits if rule.dst is None]
            if drops:
                dropped[key] = drops[0].why
                continue
            if not hits:
                unused.append(key)
            for rule, fields in hits:
                new_key = rule.target(fields)
                new_value = rule.fn(value) if rule.fn is not None else value
                if new_key in out:
                    old = out[new_key]
                    if old.shape != new_value.shape or not torch.equal(old, new_value):
                        raise ConversionError(
                            f'{sources[new_key]!r} and {key!r} both map to {new_key!r} but '
                            'hold different values')
                    continue
                out[new_key], sources[new_key] = new_value, key
        return MappedStateDict(out, sources, unused, dropped)

    def inverse(self) -> 'KeyMapper':
        """The mapper from the target layout back to the source layout (dropping rules
        have no inverse and are left out)."""
        return KeyMapper([r for r in (rule.inverse() for rule in self.rules) if r is not None])
