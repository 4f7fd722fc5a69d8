"""Options dataclasses from YAML and from `--flags`, typed and checked one way for every caller.

An options dataclass (`JudgeOptions`, `GenerateOptions`, `JPOConfig`, `SFTConfig`) is declared once: its fields are
the flags of its `jpo` subcommand (`add_options`, or `config_parser` for TrainingArguments classes) and the keys of
its recipe section. Recipes, `--config` files of `jpo train` / `jpo sft`, flags and dicts handed to the Python API
all go through here, so a misspelled key or a value of the wrong type fails the same way everywhere: one line
naming the file (or flag), the key and the nearest valid key or the expected type.

Values are typed against the type hint of the dataclass field they fill (`typed`, `typed_config`): a recipe's
sections are dataclasses, and its free-form training settings (`sft.config`, `train.common`, a run's `config`,
`model.build.pretrain`) and a `--config` file are fields of `JPOConfig` / `SFTConfig` (TrainingArguments). YAML 1.1
reads `1e-4` (no dot) as text; a number field takes such text as the number it spells, since that is what was
meant. Anything else of the wrong type is one line naming the file, the key and the expected type -- before any
data or model loads, not when training starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import os
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jpo.errors import JpoError


def _unique_keys_loader() -> type:
    """PyYAML's safe loader, refusing a key given twice in one mapping: PyYAML keeps the last value and drops the
    first without a word, so `beta: 0.1` ... `beta: 0.5` would train at 0.5 whichever the user meant."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):  # PyYAML's signature
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` overrides by design
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, typing.Hashable) and key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key '{key}' is given twice in one mapping", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return Loader


def read_yaml(path: str | os.PathLike, what: str = "settings file") -> dict[str, Any]:
    """The mapping in a YAML file (an empty file is an empty mapping). JpoError on a file that cannot be read, is not
    UTF-8, or is not valid YAML (`FILE:LINE:COLUMN: ...`, a key given twice included)."""
    import yaml

    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_unique_keys_loader())  # a SafeLoader
    except OSError as error:
        raise JpoError(f"{path}: cannot read {what}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise JpoError(f"{path}: cannot read {what}: not UTF-8 text (byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        if mark is None:
            raise JpoError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
        context = f" ({error.context})" if getattr(error, "context", None) else ""
        raise JpoError(f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {error.problem}{context}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise JpoError(f"{path}: a {what} must be a mapping of key: value, not {type(data).__name__}")
    return data


def check_keys(where: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise on the first key of `given` that is not in `valid`, naming the closest valid key when one is close.

    `where` locates the mapping, e.g. ``configs/tldr.yaml: train.runs[1]``."""
    valid = sorted(set(valid))
    for key in given:
        if key in valid:
            continue
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"valid: {', '.join(valid)}"
        raise JpoError(f"{where}: unknown key '{key}' ({hint})")

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
        if typing.get_origin(_not_null(hint)) is typing.Literal:  # a choice: said as the recipe's other choices are
            valid = ", ".join(map(str, typing.get_args(_not_null(hint))))
            raise JpoError(f"{where}: '{value}' is not one of {valid}") from None
        raise JpoError(f"{where}: expected {_name(hint)}, got {value!r}") from None


def hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint of a dataclass (string annotations resolved)."""
    return typing.get_type_hints(cls)


def typed_config(where: str, values: dict[str, Any], cls: type,
                 overrides: dict[str, Any] | None = None, sep: str = ".") -> dict[str, Any]:
    """A training settings mapping with each value typed against `cls`'s field (a TrainingArguments subclass);
    a field's `choices` metadata is checked too. Keys are checked elsewhere (check_keys). An error names
    `where`, `sep`, the key: `x.yaml: sft.config.learning_rate` (sep "."), `x.yaml: learning_rate` (sep ": ")."""
    resolved = {**hints(cls), **(overrides or {})}
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in resolved:
            out[key] = value
            continue
        value = typed(f"{where}{sep}{key}", value, resolved[key])
        valid = choices.get(key)
        if valid is not None and isinstance(value, str) and value not in list(valid):
            raise JpoError(f"{where}{sep}{key}: expected one of {', '.join(map(str, valid))}, got {value!r}")
        out[key] = value
    return out


# --- flags -------------------------------------------------------------------------------------------------------


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The user-settable fields of an options dataclass: neither `init=False` nor marked `internal` (a secret or a
    value only code sets, e.g. `JudgeOptions.api_key`). These are its flags and its recipe keys."""
    return [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("internal")]


def _not_null(hint: Any) -> Any:
    """`X | None` as X: a flag's value is never null (not giving the flag leaves the default)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        return rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007 (built from a tuple)
    return hint


def _flag_type(flag: str, hint: Any):
    """argparse's `type` for a field: the text typed as the field's hint (`typed`), lists comma-separated."""
    origin = typing.get_origin(hint)

    def parse(text: str) -> Any:
        value: Any = text
        if origin is list:
            value = [part.strip() for part in text.split(",") if part.strip()]
            if not value:
                raise argparse.ArgumentTypeError("expected at least one value")
        try:
            return typed(flag, value, hint)
        except JpoError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{flag}: ")) from None

    parse.__name__ = _name(hint)  # argparse names the type in "invalid <name> value"
    return parse


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type) -> None:
    """Every option field of dataclass `cls` as a flag `--name` (the other spelling, `--name-x`, is added by
    `jpo.cli`), its help from the field's `help` metadata, its default the field's (a field without one is a
    required flag), its value typed and checked as a YAML value is (`typed`; a list is comma-separated,
    `--temperatures 0.001,0.5`; a choice is argparse's). A `bool` field defaulting to false is a switch."""
    resolved = hints(cls)
    for f in option_fields(cls):
        flag, hint = f"--{f.name}", _not_null(resolved[f.name])
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata.get("help")}
        if hint is bool and f.default is False:
            parser.add_argument(flag, action="store_true", **kwargs)
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if typing.get_origin(hint) is typing.Literal:  # argparse's own "invalid choice" message
            kwargs["choices"] = typing.get_args(hint)
        else:
            kwargs["type"] = _flag_type(flag, hint)
        if default is dataclasses.MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        parser.add_argument(flag, **kwargs)


def options_from(args: argparse.Namespace, cls: type) -> Any:
    """`cls` from the flags `add_options` declared."""
    return cls(**{f.name: getattr(args, f.name) for f in option_fields(cls)})


def option_flags(options: Any, cls: type | None = None) -> list[str]:
    """The flags that give `add_options` these values: every option of `cls` (default: the instance's class) that
    is set, so a recorded command reproduces the run even if a default changes. Lists comma-joined; a switch is
    its flag alone."""
    argv: list[str] = []
    for f in option_fields(cls or type(options)):
        value = getattr(options, f.name)
        flag = f"--{f.name}"
        if value is None or value is False:
            continue
        if value is True and f.default is False:
            argv.append(flag)
            continue
        argv += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return argv


# TrainingArguments classes (`JPOConfig`, `SFTConfig`) keep transformers' own flags (`HfArgumentParser`), exactly as
# TRL's scripts show them; their `--config FILE.yaml` is typed by `typed_config` like a recipe's training settings.

# The help of a `--no_X` flag where "Turn off --X." says less than it could.
NEGATED_HELP = {"disable_dropout": "Keep the model's dropout (TRL zeroes it by default).",
                "completion_only_loss": "Train on the prompt tokens too, not only on the response and EOS."}

UNSET = object()  # the parsed value of a flag that was not given (not a string: argparse would convert it)


def config_parser(cls: type) -> argparse.ArgumentParser:
    """A parent parser with every field of TrainingArguments subclass `cls` as a flag and `--config`; a flag not
    typed parses as `UNSET`, so the namespace tells what the user typed from what the dataclass defaults."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls, add_help=False)
    for action in parser._actions:  # HfArgumentParser gives `--no_X` the help text of `--X`, which says the opposite
        negated = [o for o in action.option_strings if o.startswith("--no_")]
        if negated and isinstance(action, argparse._StoreFalseAction):
            action.help = NEGATED_HELP.get(action.dest, f"Turn off --{action.dest}.")
    parser.set_defaults(**{f.name: UNSET for f in dataclasses.fields(cls) if f.init})
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of options; flags given here override it")
    return parser


def build_config(args: argparse.Namespace, cls: type):
    """`cls` from the `--config` file's values (keys checked, each value typed against its field, as a recipe's
    are) overridden by the flags typed (argparse typed those); one-line JpoError on a bad key, type or value."""
    values = read_yaml(args.config, "config file") if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    check_keys(args.config, values, names)
    if isinstance(values.get("dataset"), str):
        values["dataset"] = [values["dataset"]]
    # TRL's list of loss types is also written as one (or comma-separated) text, as on the command line
    values = typed_config(args.config, values, cls, {"loss_type": str | list[str] | None}, sep=": ")
    values.update({k: v for k, v in vars(args).items() if k in names and v is not UNSET})
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise JpoError(str(error).splitlines()[0]) from None
