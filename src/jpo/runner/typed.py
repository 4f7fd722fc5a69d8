"""Every recipe value typed at parse time, against the type hint of the field it fills.

A recipe's sections are dataclasses, and its free-form training settings (`sft.config`, `train.common`, a run's
`config`, `model.build.pretrain`) are fields of `JPOConfig` / `SFTConfig` (TrainingArguments): so one function,
`typed(where, value, hint)`, checks both. YAML 1.1 reads `1e-4` (no dot) as text; a number field takes such text as
the number it spells, since that is what was meant. Anything else of the wrong type is one line naming the file, the
key and the expected type -- before any stage runs, not when training starts after SFT.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from typing import Any

from jpo.errors import JpoError

# A number as YAML 1.2 (and Python) reads it, which YAML 1.1 leaves as text: 1e-4, 5E+3, .5e1.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _name(hint: Any) -> str:
    """The type as the error message says it: 'an integer', 'a list of text', 'text or nothing'."""
    if hint is Any:
        return "anything"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        enums = [a for a in args if isinstance(a, type) and issubclass(a, enum.Enum)]
        shown = [a for a in args if not (enums and a is str)]  # `SchedulerType | str` is a choice
        return " or ".join(dict.fromkeys(_name(a) for a in shown))
    if origin is list:
        return f"a list of {_name(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in hint)
    return {int: "an integer", float: "a number", bool: "true or false", str: "text",
            type(None): "nothing (null)"}.get(hint, getattr(hint, "__name__", str(hint)))


class _Mismatch(Exception):
    pass


def _check(value: Any, hint: Any) -> Any:
    """`value` as `hint` wants it, or _Mismatch."""
    if hint is Any or hint is object:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        enums = [a for a in options if isinstance(a, type) and issubclass(a, enum.Enum)]
        if enums and set(options) - set(enums) == {str}:  # TrainingArguments' `SchedulerType | str`: a choice
            return _check(value, enums[0])
        for option in sorted(options, key=lambda a: a is str):  # text last: '1e-4' is a number where one fits
            try:
                return _check(value, option)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise _Mismatch
        return [_check(v, args[0]) for v in value] if args else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return {k: _check(v, args[1]) for k, v in value.items()} if len(args) == 2 else value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if isinstance(value, str) and value in {str(m.value) for m in hint}:
            return value
        raise _Mismatch
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if hint is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        number = _number(value)
        if number is not None and float(number).is_integer():
            return int(number)
        raise _Mismatch
    if hint is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int | float):
            return value
        number = _number(value)
        if number is not None:
            return number
        raise _Mismatch
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch
    if dataclasses.is_dataclass(hint):  # nested sections are built (and typed) by their own class
        if isinstance(value, hint):
            return value
        raise _Mismatch
    return value  # a type this checker does not know (e.g. accelerate's ParallelismConfig): left to its class


def _number(value: Any) -> float | None:
    if isinstance(value, float):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    return None


def typed(where: str, value: Any, hint: Any) -> Any:
    """`value` checked against `hint` (numbers written as text, `1e-4`, become numbers); JpoError naming `where`
    (file and key) and the expected type otherwise."""
    try:
        return _check(value, hint)
    except _Mismatch:
        raise JpoError(f"{where}: expected {_name(hint)}, got {value!r}") from None


def hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint of a dataclass (string annotations resolved)."""
    return typing.get_type_hints(cls)


def typed_config(where: str, values: dict[str, Any], cls: type,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A training settings mapping with each value typed against `cls`'s field (a TrainingArguments subclass);
    a field's `choices` metadata is checked too. Keys are checked elsewhere (check_keys)."""
    resolved = {**hints(cls), **(overrides or {})}
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in resolved:
            out[key] = value
            continue
        value = typed(f"{where}.{key}", value, resolved[key])
        valid = choices.get(key)
        if valid is not None and isinstance(value, str) and value not in list(valid):
            raise JpoError(f"{where}.{key}: expected one of {', '.join(map(str, valid))}, got {value!r}")
        out[key] = value
    return out
