"""Config dataclasses as `argparse` flags, with `--config file.yaml` underneath them.

Every field becomes `--name` via `transformers.HfArgumentParser`'s field parser (so TrainingArguments flags look
exactly as in TRL). Flag defaults are suppressed, so the parsed namespace holds only what the user typed; the
config is then built from the YAML file's values overridden by those flags, and the dataclass supplies the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

from jpo.config import check_keys, read_yaml
from jpo.errors import JpoError


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    from transformers import HfArgumentParser

    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of options; flags given here override it")
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.init:
            field.type = hints[field.name]
            HfArgumentParser._parse_dataclass_field(parser, field)
    for action in parser._actions:
        if action.dest not in ("help", "config"):
            action.default = argparse.SUPPRESS
            action.required = False


def build_config(args: argparse.Namespace, cls: type):
    values = read_yaml(args.config, "config file") if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    check_keys(args.config, values, names)
    values.update({k: v for k, v in vars(args).items() if k in names})
    if isinstance(values.get("dataset"), str):
        values["dataset"] = [values["dataset"]]
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise JpoError(str(error).splitlines()[0]) from None
