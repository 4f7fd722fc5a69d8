"""Config dataclasses as `argparse` flags, with `--config file.yaml` underneath them.

Every field becomes `--name` through `transformers.HfArgumentParser` (so TrainingArguments flags look exactly as in
TRL), given to the command's parser as a parent. Flag defaults are a sentinel, so the parsed namespace tells what
the user typed; the config is then built from the YAML file's values overridden by those flags, and the
dataclass supplies the rest.
"""

from __future__ import annotations

import argparse
import dataclasses

from jpo.config import check_keys, read_yaml
from jpo.errors import JpoError

UNSET = object()  # the parsed value of a flag that was not given (not a string: argparse would convert it)


def config_parser(cls: type) -> argparse.ArgumentParser:
    """A parent parser with every field of `cls` as a flag and `--config`; a flag not typed parses as `UNSET`, so
    the namespace tells what the user typed from what the dataclass defaults."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(cls, add_help=False)
    parser.set_defaults(**{f.name: UNSET for f in dataclasses.fields(cls) if f.init})
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of options; flags given here override it")
    return parser


def build_config(args: argparse.Namespace, cls: type):
    values = read_yaml(args.config, "config file") if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    check_keys(args.config, values, names)
    values.update({k: v for k, v in vars(args).items() if k in names and v is not UNSET})
    if isinstance(values.get("dataset"), str):
        values["dataset"] = [values["dataset"]]
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise JpoError(str(error).splitlines()[0]) from None
