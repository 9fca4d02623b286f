"""Helpers of the checkpoint converters in ``tools/model_converters/``: read a checkpoint,
rename its keys by templates, check the result against the model that will load it, and report
every key that found no place.

A mapping is a list of :class:`KeyRule` templates, e.g.
``KeyRule('layers.{i}.blocks.{j}.attn.qkv.{p}', 'stages.{i}.blocks.{j}.attn.w_msa.qkv.{p}')``.
:class:`KeyMapper` applies them (inverted, it writes a state dict in the source layout, which
the tests use); :func:`match_state_dict` compares the result with a freshly built target model
and returns a :class:`KeyReport` of missing, unexpected, unused and mismatched keys, which
:meth:`KeyReport.check` turns into one error naming them all.

The Swin mapping between timm (the Ark checkpoints, and the Swin of the authors' Foundation X
code) and mmpretrain lives here because three converters share it: see
:func:`timm_swin_to_mmpretrain`.
"""
import copy
import importlib
import os
import os.path as osp
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from .checkpoint_compat import allow_mmengine_checkpoints
from .setup_env import register_all_modules

StateDict = Dict[str, Tensor]
# buffers a model computes from its config; taken from the freshly built target model when the
# source has none (timm >= 0.9 does not save them)
REGENERATED_BUFFERS = ('relative_position_index', )
# the two copies of fxmm's TeacherStudent, as state-dict key prefixes
COPIES = ('student', 'teacher')


class ConversionError(RuntimeError):
    """A checkpoint cannot be converted as asked (the message says why and what to pass)."""


# ----------------------------------------------------------------------------- reading
def load_checkpoint_file(path: str, trusted: bool = False) -> dict:
    """Load a checkpoint on the CPU, refusing arbitrary Python objects unless ``trusted``.

    mmengine checkpoints (fxmm's own) load with torch's ``weights_only=True`` through
    :func:`~fxmm.utils.checkpoint_compat.allow_mmengine_checkpoints`. Research checkpoints
    often pickle more (``argparse.Namespace``, numpy scalars): they need ``trusted=True``.

    Args:
        path (str): The checkpoint file.
        trusted (bool): Load with ``weights_only=False`` (runs the file's pickled code: only
            for files you trust). Defaults to False.

    Returns:
        dict: The loaded object.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    allow_mmengine_checkpoints()
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=not trusted)
    except pickle.UnpicklingError as err:
        found = re.search(r'Unsupported global: GLOBAL ([\w.]+)', str(err))
        reason = f'e.g. {found.group(1)}' if found else 'refused by weights_only loading'
        raise ConversionError(
            f'{path}: holds Python objects beyond tensors ({reason}). If you trust the file, '
            'pass --trusted to load it with weights_only=False') from err
    if not isinstance(checkpoint, dict):
        raise ConversionError(f'{path}: expected a dict (a state dict or a checkpoint holding '
                              f'one), got {type(checkpoint).__name__}')
    return checkpoint


def select_state_dict(checkpoint: dict,
                      key: str = 'auto',
                      candidates: Sequence[str] = ('state_dict', 'model')) -> Tuple[StateDict, str]:
    """Pick the state dict out of a checkpoint and strip DataParallel's ``module.`` prefix.

    Args:
        checkpoint (dict): A loaded checkpoint: a flat state dict, or a dict holding one.
        key (str): The entry to take; ``'auto'`` takes the first of ``candidates`` present,
            else the checkpoint itself if all its values are tensors. Defaults to ``'auto'``.
        candidates (Sequence[str]): Entries tried in order by ``'auto'``.

    Returns:
        tuple: The state dict (values tensors, ``module.`` stripped) and the entry used
        (``'<top level>'`` for a flat checkpoint).
    """
    entries = sorted(k for k in checkpoint if isinstance(k, str))
    if key != 'auto':
        if key not in checkpoint:
            raise ConversionError(f'the checkpoint has no {key!r} entry; its entries: {entries}')
        state_dict, used = checkpoint[key], key
    else:
        found = [c for c in candidates if isinstance(checkpoint.get(c), dict)]
        if found:
            state_dict, used = checkpoint[found[0]], found[0]
        elif checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            state_dict, used = checkpoint, '<top level>'
        else:
            raise ConversionError(f'found no state dict: none of the entries {list(candidates)}, '
                                  f'and the top level is not one (entries: {entries[:20]})')
    if not isinstance(state_dict, dict):
        raise ConversionError(f'checkpoint entry {used!r} is a {type(state_dict).__name__}, '
                              'not a state dict')
    bad = [k for k, v in state_dict.items() if not isinstance(v, Tensor)]
    if bad:
        raise ConversionError(f'checkpoint entry {used!r} holds non-tensor values, e.g. {bad[:5]}')
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                       for k, v in state_dict.items()), used


def fxmm_state_dict(checkpoint: dict, which: str = 'student') -> Tuple[StateDict, str]:
    """The plain ``FoundationX`` state dict of an fxmm checkpoint.

    A ``TeacherStudent`` checkpoint (keys ``student.*``, ``teacher.*``, ``progress``) gives the
    copy named by ``which``; a plain ``FoundationX`` checkpoint is returned as it is.

    Args:
        checkpoint (dict): An mmengine checkpoint (``state_dict`` entry) or a state dict.
        which (str): ``'student'`` or ``'teacher'``. Defaults to ``'student'``.

    Returns:
        tuple: The state dict and a description of what was taken.
    """
    if which not in COPIES:
        raise ValueError(f'which must be one of {COPIES}, got {which!r}')
    state_dict, entry = select_state_dict(checkpoint, candidates=('state_dict', ))
    prefix = which + '.'
    if any(k.startswith(COPIES[0] + '.') or k.startswith(COPIES[1] + '.') for k in state_dict):
        plain = OrderedDict(
            (k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))
        if not plain:
            raise ConversionError(f'the TeacherStudent checkpoint has no {which!r} copy')
        return plain, f'{entry}: the {which} of a TeacherStudent'
    return state_dict, f'{entry}: a FoundationX'


# ----------------------------------------------------------------------------- templates
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


# ----------------------------------------------------------------------------- checking
def _shape(t: Tensor) -> Tuple[int, ...]:
    return tuple(t.shape)


@dataclass
class KeyReport:
    """What a conversion did not map, for :meth:`log` and :meth:`check`.

    Attributes:
        missing (list[str]): Target-model keys nothing was converted to (they keep the
            model's initialisation).
        unexpected (list[str]): Converted keys the target model does not have, as
            ``'<converted key> (from <source key>)'``.
        mismatched (dict): Key -> (converted shape, target shape).
        unused (list[str]): Source keys no rule matched.
        dropped (dict): Source key -> why it was consumed without being written.
        regenerated (list[str]): Target buffers computed by the model itself and taken from it.
        notes (list[str]): Remarks on exactness (the converted model does not compute
            exactly what the source did, and why).
    """
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: Dict[str, Tuple[tuple, tuple]] = field(default_factory=dict)
    unused: List[str] = field(default_factory=list)
    dropped: Dict[str, str] = field(default_factory=dict)
    regenerated: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def lines(self, limit: int = 40) -> List[str]:
        """The report as text lines, each list cut to ``limit`` entries."""

        def section(title, items):
            items = list(items)
            if not items:
                return []
            shown = [f'    {item}' for item in items[:limit]]
            more = [f'    ... and {len(items) - limit} more'] if len(items) > limit else []
            return [f'  {title} ({len(items)}):', *shown, *more]

        whys = {}
        for key, why in self.dropped.items():
            whys.setdefault(why or 'dropped', []).append(key)
        out = []
        out += section('missing in the converted state dict (keep their initialisation)',
                       self.missing)
        out += section('shape mismatch (converted vs target)',
                       (f'{k}: {a} vs {b}' for k, (a, b) in self.mismatched.items()))
        out += section('unused source keys (no place in the target)',
                       list(self.unused) + list(self.unexpected))
        for why, keys in whys.items():
            out += section(f'dropped: {why}', keys)
        out += section('regenerated by the target model', self.regenerated)
        out += section('notes', self.notes)
        return out

    def log(self, title: str) -> None:
        """Print the report with mmengine's logger."""
        body = self.lines()
        print_log('\n'.join([f'{title}: ' + ('every key mapped' if not body else '')] + body),
                  logger='current')

    def check(self, allow_missing: bool = False, allow_unused: bool = False) -> None:
        """Raise a :class:`ConversionError` listing the problems a user did not allow.

        Args:
            allow_missing (bool): Accept target keys without a converted value (missing or
                shape-mismatched): they keep the model's initialisation.
            allow_unused (bool): Accept source keys that found no place in the target.
        """
        problems = []
        if (self.missing or self.mismatched) and not allow_missing:
            problems.append(f'{len(self.missing)} missing and {len(self.mismatched)} '
                            'shape-mismatched target keys (pass --allow-missing to keep their '
                            'initialisation)')
        if (self.unused or self.unexpected) and not allow_unused:
            problems.append(f'{len(self.unused) + len(self.unexpected)} source keys with no '
                            'place in the target (pass --allow-unused to drop them)')
        if problems:
            raise ConversionError('conversion incomplete: ' + '; '.join(problems) + '\n'
                                  + '\n'.join(self.lines()))


def match_state_dict(mapped: MappedStateDict,
                     reference: StateDict,
                     regenerate: Sequence[str] = REGENERATED_BUFFERS
                     ) -> Tuple['OrderedDict[str, Tensor]', KeyReport]:
    """Check converted tensors against a target model's state dict.

    Shape-mismatched and unexpected keys are left out of the result. Target buffers whose
    name ends with one of ``regenerate`` are taken from ``reference`` when the source had
    none; when it had one, it must equal the model's (else the source computes something
    else: reported as a mismatch).

    Args:
        mapped (MappedStateDict): The output of :meth:`KeyMapper.convert`.
        reference (dict[str, Tensor]): The state dict of a freshly built target model.
        regenerate (Sequence[str]): Key suffixes of buffers the model computes itself.

    Returns:
        tuple: The state dict in the target's key order (loadable with ``strict=True`` when
        the report is clean) and the :class:`KeyReport`.
    """
    report = KeyReport(unused=list(mapped.unused), dropped=dict(mapped.dropped))
    converted = mapped.state_dict
    out = OrderedDict()
    for key, ref in reference.items():
        if key not in converted:
            if key.endswith(tuple(regenerate)):
                out[key] = ref.clone()
                report.regenerated.append(key)
            else:
                report.missing.append(key)
            continue
        value = converted[key]
        if _shape(value) != _shape(ref):
            report.mismatched[key] = (_shape(value), _shape(ref))
        elif key.endswith(tuple(regenerate)) and not torch.equal(value.to(ref.dtype), ref):
            report.mismatched[key] = (_shape(value), _shape(ref))
            report.notes.append(f'{key}: the source buffer differs from the one the target '
                                'model computes (a different window layout?)')
        else:
            out[key] = value
    report.unexpected = [f'{k} (from {mapped.sources[k]})' for k in converted
                         if k not in reference]
    return out, report


# ----------------------------------------------------------------------------- Swin
# timm concatenates the 2x2 neighbours of patch merging as (x0, x1, x2, x3) = offsets
# (dy, dx) (0,0), (1,0), (0,1), (1,1), channel blocks of C; mmpretrain's nn.Unfold orders the
# 4C inputs channel-major, offsets (0,0), (0,1), (1,0), (1,1) within each channel.
_MERGE_ORDER = [0, 2, 1, 3]  # its own inverse


def merge_weight_timm_to_unfold(weight: Tensor) -> Tensor:
    """Permute a patch-merging ``reduction.weight`` (out, 4C) from timm's input order to
    mmpretrain's (``nn.Unfold``)."""
    out, in4 = weight.shape
    return weight.reshape(out, 4, in4 // 4)[:, _MERGE_ORDER].transpose(1, 2).reshape(out, in4)


def merge_weight_unfold_to_timm(weight: Tensor) -> Tensor:
    """Inverse of :func:`merge_weight_timm_to_unfold`."""
    out, in4 = weight.shape
    return weight.reshape(out, in4 // 4, 4)[:, :, _MERGE_ORDER].transpose(1, 2).reshape(out, in4)


def merge_norm_timm_to_unfold(vector: Tensor) -> Tensor:
    """Permute a patch-merging ``norm`` weight/bias (4C,) from timm's order to mmpretrain's."""
    return vector.reshape(4, -1)[_MERGE_ORDER].t().reshape(-1)


def merge_norm_unfold_to_timm(vector: Tensor) -> Tensor:
    """Inverse of :func:`merge_norm_timm_to_unfold`."""
    return vector.reshape(-1, 4)[:, _MERGE_ORDER].t().reshape(-1)


def swin_rules(src_prefix: str = '', dst_prefix: str = '') -> List[KeyRule]:
    """Rules from timm's Swin (<= 0.6 layout: patch merging at the end of ``layers.i``) to
    mmpretrain's ``SwinTransformer``, stage norms excluded (the caller maps ``norm``).

    The same layout is used by the Swin of the official detection code that the authors'
    Foundation X code copies (``backbone.0.`` there).

    Args:
        src_prefix (str): Prefix of the source keys, e.g. ``'backbone.0.'``.
        dst_prefix (str): Prefix of the target keys, e.g. ``'backbone.'``.

    Returns:
        list[KeyRule]: The rules.
    """
    s, d = src_prefix, dst_prefix
    block, stage = s + 'layers.{i}.blocks.{j}.', d + 'stages.{i}.blocks.{j}.'
    return [
        KeyRule(s + 'patch_embed.proj.{p}', d + 'patch_embed.projection.{p}'),
        KeyRule(s + 'patch_embed.norm.{p}', d + 'patch_embed.norm.{p}'),
        KeyRule(block + 'norm1.{p}', stage + 'norm1.{p}'),
        KeyRule(block + 'norm2.{p}', stage + 'norm2.{p}'),
        KeyRule(block + 'attn.qkv.{p}', stage + 'attn.w_msa.qkv.{p}'),
        KeyRule(block + 'attn.proj.{p}', stage + 'attn.w_msa.proj.{p}'),
        KeyRule(block + 'attn.relative_position_bias_table',
                stage + 'attn.w_msa.relative_position_bias_table'),
        KeyRule(block + 'attn.relative_position_index',
                stage + 'attn.w_msa.relative_position_index'),
        KeyRule(block + 'mlp.fc1.{p}', stage + 'ffn.layers.0.0.{p}'),
        KeyRule(block + 'mlp.fc2.{p}', stage + 'ffn.layers.1.{p}'),
        KeyRule(s + 'layers.{i}.downsample.reduction.weight',
                d + 'stages.{i}.downsample.reduction.weight',
                merge_weight_timm_to_unfold, merge_weight_unfold_to_timm),
        KeyRule(s + 'layers.{i}.downsample.norm.{p}', d + 'stages.{i}.downsample.norm.{p}',
                merge_norm_timm_to_unfold, merge_norm_unfold_to_timm),
        KeyRule(block + 'attn_mask', None, why='shifted-window masks (the model computes them)'),
    ]


def swin_num_stages(state_dict: StateDict, src_prefix: str = '') -> int:
    """The number of stages (``layers.i``) of a timm-layout Swin state dict."""
    regex = re.compile(re.escape(src_prefix) + r'layers\.(\d+)\.')
    stages = {int(m.group(1)) for k in state_dict for m in [regex.match(k)] if m}
    if not stages:
        raise ConversionError(f'no Swin stages ({src_prefix}layers.<i>.*) in the state dict')
    return max(stages) + 1


def timm_downsample_to_stage_end(state_dict: StateDict, src_prefix: str = '') -> StateDict:
    """Move patch merging of timm >= 0.9 (``layers.i.downsample`` at the start of stage i >= 1)
    to the end of stage i - 1, the layout of timm <= 0.6 and mmpretrain. Unchanged if the
    state dict already has the old layout."""
    regex = re.compile(re.escape(src_prefix) + r'layers\.(\d+)\.downsample\.(.+)')
    stages = {int(m.group(1)) for k in state_dict for m in [regex.fullmatch(k)] if m}
    if not stages or 0 in stages:
        return state_dict
    return OrderedDict(
        (f'{src_prefix}layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}' if m else k, v)
        for k, v in state_dict.items() for m in [regex.fullmatch(k)])


def timm_swin_to_mmpretrain(state_dict: StateDict,
                            src_prefix: str = '',
                            dst_prefix: str = '',
                            final_norm: Optional[str] = 'norm',
                            extra_rules: Sequence[KeyRule] = ()) -> MappedStateDict:
    """Convert a timm Swin (any version's layout) to mmpretrain's ``SwinTransformer`` keys.

    Differences handled: ``layers`` -> ``stages``; ``attn.*`` -> ``attn.w_msa.*``;
    ``mlp.fc1/fc2`` -> ``ffn.layers.0.0/1``; ``patch_embed.proj`` -> ``projection``; the
    patch-merging input order (timm concatenates the 2x2 neighbours, mmpretrain unfolds them:
    ``reduction.weight`` columns and ``norm`` entries are permuted); timm >= 0.9's patch
    merging at the start of the next stage; the final ``norm`` -> ``norm<last stage>``;
    ``attn_mask`` buffers are dropped. Keys of other modules (``head``, Ark's ``projector``)
    are returned as unused.

    Args:
        state_dict (dict[str, Tensor]): The timm-layout tensors.
        src_prefix (str): Prefix of the Swin keys in ``state_dict``. Defaults to ''.
        dst_prefix (str): Prefix of the mmpretrain keys written. Defaults to ''.
        final_norm (str, optional): Name (below ``src_prefix``) of the norm after the last
            stage, mapped to ``norm<last>``; None to leave it unmapped. Defaults to ``'norm'``.
        extra_rules (Sequence[KeyRule]): Rules for the other modules of the checkpoint (heads),
            applied in the same pass.

    Returns:
        MappedStateDict: The converted tensors and the left-over keys.
    """
    state_dict = timm_downsample_to_stage_end(state_dict, src_prefix)
    rules = swin_rules(src_prefix, dst_prefix)
    if final_norm is not None:
        last = swin_num_stages(state_dict, src_prefix) - 1
        rules.append(KeyRule(f'{src_prefix}{final_norm}.{{p}}', f'{dst_prefix}norm{last}.{{p}}'))
    return KeyMapper(rules + list(extra_rules)).convert(state_dict)


def mmpretrain_swin_to_timm(state_dict: StateDict, num_stages: int = 4) -> StateDict:
    """mmpretrain ``SwinTransformer`` keys -> timm <= 0.6 keys (``norm<last>`` -> ``norm``);
    the inverse of :func:`timm_swin_to_mmpretrain`. Other stage norms are left out."""
    rules = swin_rules() + [KeyRule('norm.{p}', f'norm{num_stages - 1}.{{p}}')]
    return KeyMapper(rules).inverse().convert(state_dict).state_dict


def infer_swin_arch(state_dict: StateDict, prefix: str = '') -> dict:
    """Read a Swin's size from its mmpretrain-layout tensors.

    Returns:
        dict: ``arch=dict(embed_dims, depths, num_heads)``, ``window_size``, ``patch_size``:
        the arguments of ``mmpretrain.SwinTransformer`` that size its parameters.
    """
    try:
        embed_dims, _, patch, _ = state_dict[prefix + 'patch_embed.projection.weight'].shape
    except KeyError as err:
        raise ConversionError(f'no {prefix}patch_embed.projection.weight: not a Swin') from err
    regex = re.compile(re.escape(prefix) + r'stages\.(\d+)\.blocks\.(\d+)\.attn\.w_msa\.'
                       r'relative_position_bias_table')
    blocks = {}
    for key, value in state_dict.items():
        m = regex.fullmatch(key)
        if m:
            blocks.setdefault(int(m.group(1)), {})[int(m.group(2))] = value.shape
    stages = sorted(blocks)
    depths = [len(blocks[i]) for i in stages]
    num_heads = [blocks[i][0][1] for i in stages]
    window = (int(round(blocks[stages[0]][0][0]**0.5)) + 1) // 2
    return dict(arch=dict(embed_dims=int(embed_dims), depths=depths, num_heads=num_heads),
                window_size=window, patch_size=int(patch))


def swin_pad_small_map(backbone: nn.Module) -> Optional[bool]:
    """The ``pad_small_map`` of an mmpretrain ``SwinTransformer`` (None for other backbones):
    True shifts the windows even where a stage map equals the window (as the detection Swin
    does), False does not (as timm and the classification Swin)."""
    stages = getattr(backbone, 'stages', None)
    if not stages:
        return None
    return getattr(stages[-1].blocks[0].attn, 'pad_small_map', None)


# ----------------------------------------------------------------------------- fxmm models
def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file and merge ``--cfg-options`` into it."""
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def foundation_x_cfg(cfg: Config) -> dict:
    """The ``FoundationX`` config of a config file's ``model`` (the inner ``model`` of a
    ``TeacherStudent``)."""
    model = copy.deepcopy(cfg.model)
    if model.get('type') == 'TeacherStudent':
        model = model.model
    if model.get('type') != 'FoundationX':
        raise ConversionError(f"the config's model is {model.get('type')!r}; expected "
                              'FoundationX or a TeacherStudent of one')
    return model


def build_in_scope(cfg: dict, scope: str) -> nn.Module:
    """Build a model config in ``scope``'s registry (``'fxmm'``, ``'mmdet'``, ...), with its
    weights as constructed (no ``init_weights``: nothing is downloaded or read)."""
    register_all_modules(init_default_scope=False)
    registry = dict(fxmm='fxmm.registry', mmdet='mmdet.registry', mmseg='mmseg.registry',
                    mmpretrain='mmpretrain.registry')
    if scope not in registry:
        raise ValueError(f'unknown scope {scope!r}; one of {sorted(registry)}')
    models = importlib.import_module(registry[scope]).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return models.build(copy.deepcopy(cfg))


def teacher_student_state_dict(student: StateDict, teacher: StateDict) -> StateDict:
    """A ``TeacherStudent`` state dict from two ``FoundationX`` ones (training progress 0)."""
    out = OrderedDict((f'student.{k}', v) for k, v in student.items())
    out.update((f'teacher.{k}', v) for k, v in teacher.items())
    out['progress'] = torch.zeros(())
    return out


def load_fxmm_checkpoint(config: str,
                         checkpoint: str,
                         which: str = 'student',
                         cfg_options: Optional[dict] = None) -> Tuple[nn.Module, dict, str]:
    """Build the FoundationX of an fxmm config and load a checkpoint of it (strictly).

    Args:
        config (str): The fxmm config file.
        checkpoint (str): An fxmm checkpoint of that config (FoundationX or TeacherStudent).
        which (str): The copy of a TeacherStudent checkpoint. Defaults to ``'student'``.
        cfg_options (dict, optional): Overrides of the config.

    Returns:
        tuple: The model (eval mode), its ``FoundationX`` config and what was loaded.
    """
    model_cfg = foundation_x_cfg(load_config(config, cfg_options))
    state_dict, what = fxmm_state_dict(load_checkpoint_file(checkpoint), which)
    return load_fxmm_model(model_cfg, state_dict), model_cfg, what


def image_preprocessor_cfg(model: nn.Module, type_name: str, divisor_key: str) -> dict:
    """An mmdet/mmseg data preprocessor config that normalises 0..255 3-channel images as
    fxmm's ``CXRDataPreprocessor`` normalises 0..1 grey ones (mean and std x 255, no channel
    swap: the channels are equal).

    Args:
        model (nn.Module): A FoundationX.
        type_name (str): ``'DetDataPreprocessor'`` or ``'SegDataPreProcessor'``.
        divisor_key (str): The preprocessor's name for the padding divisor.
    """
    pre = model.data_preprocessor
    return {'type': type_name,
            'mean': [round(float(m) * 255, 6) for m in pre.mean.flatten()],
            'std': [round(float(s) * 255, 6) for s in pre.std.flatten()],
            'bgr_to_rgb': False,
            divisor_key: pre.pad_size_divisor}


def load_fxmm_model(model_cfg: dict, state_dict: StateDict) -> nn.Module:
    """Build the ``FoundationX`` of ``model_cfg`` and load ``state_dict`` into it strictly.

    Returns:
        nn.Module: The model in eval mode.

    Raises:
        ConversionError: If the checkpoint does not fit the config, naming the keys.
    """
    model = build_in_scope(model_cfg, 'fxmm')
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise ConversionError(
            f'the checkpoint does not fit the config: {len(missing)} missing keys '
            f'{missing[:10]}, {len(unexpected)} unexpected keys {unexpected[:10]}')
    model.eval()
    return model


def check_export(mapped: MappedStateDict, target_cfg: dict, scope: str,
                 title: str) -> 'OrderedDict[str, Tensor]':
    """Build ``target_cfg`` in ``scope`` and check that the exported tensors fill it exactly
    (every key, every shape, nothing left over); log the report.

    Returns:
        OrderedDict: The state dict in the target's key order, loadable with ``strict=True``.
    """
    target = build_in_scope(target_cfg, scope)
    exported, report = match_state_dict(mapped, target.state_dict())
    report.log(title)
    report.check()
    return exported


def save_export(state_dict: StateDict, model_cfg: dict, scope: str, out: str,
                meta: dict) -> Tuple[str, str]:
    """Write an export as ``<out>.pth`` (mmengine checkpoint) and ``<out>.py`` (a config with
    ``default_scope`` and ``model``; ``load_from`` the checkpoint for whole detectors and
    segmentors, the backbone's ``init_cfg`` for a backbone).

    Returns:
        tuple[str, str]: The checkpoint and config paths.
    """
    ckpt, config = out + '.pth', out + '.py'
    save_converted(state_dict, ckpt, meta)
    cfg = dict(default_scope=scope, model=model_cfg)
    if 'backbone' in model_cfg:
        cfg['load_from'] = ckpt
    else:
        cfg['model'] = dict(model_cfg, init_cfg=dict(type='Pretrained', checkpoint=ckpt))
    Config(cfg).dump(config)
    print_log(f'wrote the {scope} config {config}', logger='current')
    return ckpt, config


def save_converted(state_dict: StateDict, path: str, meta: dict) -> None:
    """Save ``{'meta': meta, 'state_dict': state_dict}``, an mmengine checkpoint that
    ``load_from`` / ``init_cfg=dict(type='Pretrained', ...)`` read, loadable with torch's
    ``weights_only=True``.

    Args:
        state_dict (dict[str, Tensor]): The converted tensors.
        path (str): Output file; its folder is created.
        meta (dict): Plain data (str, numbers, lists, dicts): what was converted, how.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    state = OrderedDict((k, v.detach().clone().contiguous()) for k, v in state_dict.items())
    torch.save(dict(meta=meta, state_dict=state), path)
    print_log(f'saved {len(state)} tensors to {path}', logger='current')


def add_conversion_args(parser) -> None:
    """Add the options every converter shares to an ``argparse`` parser."""
    parser.add_argument('--trusted', action='store_true',
                        help='load the source with weights_only=False (needed by checkpoints '
                        'that pickle Python objects; only for files you trust)')
    parser.add_argument('--allow-missing', action='store_true',
                        help='accept target keys the source cannot fill (they keep their '
                        'initialisation); without it such a conversion fails')
    parser.add_argument('--allow-unused', action='store_true',
                        help='accept source keys that have no place in the target (they are '
                        'dropped); without it such a conversion fails')


def add_export_args(parser) -> None:
    """Add the arguments every fxmm exporter shares to an ``argparse`` parser."""
    parser.add_argument('config', help='fxmm config of the checkpoint')
    parser.add_argument('checkpoint', help='fxmm checkpoint')
    parser.add_argument('out', help='output path without extension: writes OUT.pth and OUT.py')
    parser.add_argument('--copy', default='student', choices=COPIES,
                        help='the copy of a TeacherStudent checkpoint to export')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
